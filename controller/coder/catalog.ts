// The metrics a Coder deployment (coderd) exports on its Prometheus endpoint,
// in one place: names, types, help and labels as in coder/coder's
// docs/admin/integrations/prometheus.md (the generated table), plus what this
// project needs to know about them:
//   - `flag`: the coderd setting that must be on for the metric to appear
//     (CODER_PROMETHEUS_COLLECT_AGENT_STATS for coderd_agentstats_*,
//     CODER_PROMETHEUS_COLLECT_DB_METRICS for the per-query DB metrics);
//   - `deprecated`: the metric that replaces it (removed in later releases);
//   - `scope`: how many series a deployment has, used by the fixture generator
//     ("workspace" = one label set per workspace/agent, "template" = per
//     template, "global" = the cartesian product of `values`).
// The exporter's presets and the fixture generator both read this list.

export type CatalogType = "counter" | "gauge" | "histogram" | "summary";
export type Scope = "global" | "template" | "workspace" | "owner";

export interface CatalogMetric {
  name: string;
  type: CatalogType;
  help: string;
  labels: readonly string[];
  scope: Scope;
  flag?: "CODER_PROMETHEUS_COLLECT_AGENT_STATS" | "CODER_PROMETHEUS_COLLECT_DB_METRICS";
  deprecated?: { replacement: string };
  /** For global-scope metrics: the values each label takes. */
  values?: Readonly<Record<string, readonly string[]>>;
  /** Histogram bucket upper bounds (without +Inf). */
  buckets?: readonly number[];
}

const AGENT_STATS = "CODER_PROMETHEUS_COLLECT_AGENT_STATS" as const;
const DB_METRICS = "CODER_PROMETHEUS_COLLECT_DB_METRICS" as const;

/** Labels that identify a person; candidates for the exporter's PII handling. */
export const PII_LABELS = [
  "username",
  "workspace_owner",
  "owner_email",
  "email",
  "initiator_id",
] as const;

/** Labels that make a series per-workspace; aggregated away by the per_template preset. */
export const WORKSPACE_LABELS = [
  "agent_name",
  "username",
  "workspace_name",
  "workspace_owner",
  "tailnet_node",
  "template_version",
] as const;

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 10, 30];
const BUILD_BUCKETS = [1, 10, 30, 60, 300, 600, 1800, 3600];
const API_PATHS = [
  "/api/v2/buildinfo",
  "/api/v2/users/me",
  "/api/v2/workspaces",
  "/api/v2/workspaces/{workspace}",
  "/api/v2/workspaceagents/me/manifest",
  "/api/v2/workspacebuilds/{workspacebuild}/logs",
  "/api/v2/templates/{template}",
  "/api/v2/organizations/{organization}/members",
];

export const CATALOG: readonly CatalogMetric[] = [
  // Agents (always on, one series per workspace agent).
  {
    name: "coderd_agents_up",
    type: "gauge",
    help: "The number of active agents per workspace.",
    labels: ["template_name", "template_version", "username", "workspace_name"],
    scope: "workspace",
  },
  {
    name: "coderd_agents_connections",
    type: "gauge",
    help: "Agent connections with statuses.",
    labels: [
      "agent_name",
      "lifecycle_state",
      "status",
      "tailnet_node",
      "username",
      "workspace_name",
    ],
    scope: "workspace",
  },
  {
    name: "coderd_agents_connection_latencies_seconds",
    type: "gauge",
    help: "Agent connection latencies in seconds.",
    labels: ["agent_name", "derp_region", "preferred", "username", "workspace_name"],
    scope: "workspace",
  },
  {
    name: "coderd_agents_apps",
    type: "gauge",
    help: "Agent applications with statuses.",
    labels: ["agent_name", "app_name", "health", "username", "workspace_name"],
    scope: "workspace",
  },
  {
    name: "coderd_agents_first_connection_seconds",
    type: "histogram",
    help: "Duration from agent creation to first connection to the control plane in seconds.",
    labels: ["agent_name", "template_name", "username", "workspace_name"],
    scope: "workspace",
    buckets: [1, 10, 30, 60, 120, 300, 600],
  },
  {
    name: "agent_scripts_executed_total",
    type: "counter",
    help: "Total number of scripts executed by the Coder agent. Includes cron scheduled scripts.",
    labels: ["agent_name", "success", "template_name", "username", "workspace_name"],
    scope: "workspace",
  },
  // Agent stats (CODER_PROMETHEUS_COLLECT_AGENT_STATS).
  ...(
    [
      ["coderd_agentstats_connection_count", "The number of established connections by agent"],
      [
        "coderd_agentstats_connection_median_latency_seconds",
        "The median agent connection latency",
      ],
      ["coderd_agentstats_rx_bytes", "Agent Rx bytes"],
      ["coderd_agentstats_tx_bytes", "Agent Tx bytes"],
      [
        "coderd_agentstats_session_count_jetbrains",
        "The number of session established by JetBrains",
      ],
      [
        "coderd_agentstats_session_count_reconnecting_pty",
        "The number of session established by reconnecting PTY",
      ],
      ["coderd_agentstats_session_count_ssh", "The number of session established by SSH"],
      ["coderd_agentstats_session_count_vscode", "The number of session established by VSCode"],
    ] as const
  ).map(
    ([name, help]): CatalogMetric => ({
      name,
      type: "gauge",
      help,
      labels: ["agent_name", "username", "workspace_name"],
      scope: "workspace",
      flag: AGENT_STATS,
    }),
  ),
  {
    name: "coderd_agentstats_currently_reachable_peers",
    type: "gauge",
    help: "The number of peers (e.g. clients) that are currently reachable over the encrypted network.",
    labels: ["agent_name", "connection_type", "template_name", "username", "workspace_name"],
    scope: "workspace",
    flag: AGENT_STATS,
  },
  {
    name: "coderd_agentstats_startup_script_seconds",
    type: "gauge",
    help: "The number of seconds the startup script took to execute.",
    labels: ["agent_name", "success", "template_name", "username", "workspace_name"],
    scope: "workspace",
    flag: AGENT_STATS,
  },
  // Workspaces and builds.
  {
    name: "coderd_workspace_builds_total",
    type: "counter",
    help: "The number of workspaces started, updated, or deleted.",
    labels: [
      "status",
      "template_name",
      "template_version",
      "workspace_name",
      "workspace_owner",
      "workspace_transition",
    ],
    scope: "workspace",
  },
  {
    name: "coderd_workspace_latest_build_status",
    type: "gauge",
    help: "The current workspace statuses by template, transition, and owner for all non-deleted workspaces.",
    labels: [
      "status",
      "template_name",
      "template_version",
      "workspace_owner",
      "workspace_transition",
    ],
    scope: "owner",
  },
  {
    name: "coderd_api_workspace_latest_build",
    type: "gauge",
    help: "The current number of workspace builds by status for all non-deleted workspaces.",
    labels: ["status"],
    scope: "global",
    values: { status: ["succeeded", "running", "failed", "canceled", "pending"] },
  },
  {
    name: "coderd_api_workspace_latest_build_total",
    type: "gauge",
    help: "DEPRECATED: use coderd_api_workspace_latest_build instead",
    labels: ["status"],
    scope: "global",
    values: { status: ["succeeded", "running", "failed", "canceled", "pending"] },
    deprecated: { replacement: "coderd_api_workspace_latest_build" },
  },
  {
    name: "coderd_workspace_creation_duration_seconds",
    type: "histogram",
    help: "Time to create a workspace by organization, template, preset, and type (regular or prebuild).",
    labels: ["organization_name", "preset_name", "template_name", "type"],
    scope: "template",
    buckets: BUILD_BUCKETS,
  },
  {
    name: "coderd_workspace_creation_total",
    type: "counter",
    help: "Total regular (non-prebuilt) workspace creations by organization, template, and preset.",
    labels: ["organization_name", "preset_name", "template_name"],
    scope: "template",
  },
  {
    name: "coderd_template_workspace_build_duration_seconds",
    type: "histogram",
    help: "Duration from workspace build creation to agent ready, by template.",
    labels: ["is_prebuild", "organization_name", "status", "template_name", "transition"],
    scope: "template",
    buckets: BUILD_BUCKETS,
  },
  {
    name: "coderd_provisionerd_workspace_build_timings_seconds",
    type: "histogram",
    help: "The time taken for a workspace to build.",
    labels: ["status", "template_name", "template_version", "workspace_transition"],
    scope: "template",
    buckets: BUILD_BUCKETS,
  },
  {
    name: "coderd_insights_templates_active_users",
    type: "gauge",
    help: "The number of active users of the template.",
    labels: ["organization_name", "template_name"],
    scope: "template",
  },
  // API.
  {
    name: "coderd_api_active_users_duration_hour",
    type: "gauge",
    help: "The number of users that have been active within the last hour.",
    labels: [],
    scope: "global",
  },
  {
    name: "coderd_api_concurrent_requests",
    type: "gauge",
    help: "The number of concurrent API requests.",
    labels: ["method", "path"],
    scope: "global",
    values: { method: ["GET", "POST"], path: API_PATHS },
  },
  {
    name: "coderd_api_concurrent_websockets",
    type: "gauge",
    help: "The total number of concurrent API websockets.",
    labels: ["path"],
    scope: "global",
    values: {
      path: ["/api/v2/workspaceagents/me/rpc", "/api/v2/workspacebuilds/{workspacebuild}/logs"],
    },
  },
  {
    name: "coderd_api_request_latencies_seconds",
    type: "histogram",
    help: "Latency distribution of requests in seconds.",
    labels: ["method", "path"],
    scope: "global",
    values: { method: ["GET", "POST", "PUT"], path: API_PATHS },
    buckets: LATENCY_BUCKETS,
  },
  {
    name: "coderd_api_requests_processed_total",
    type: "counter",
    help: "The total number of processed API requests",
    labels: ["code", "method", "path"],
    scope: "global",
    values: { code: ["200", "201", "401", "404", "500"], method: ["GET", "POST"], path: API_PATHS },
  },
  {
    name: "coderd_api_total_user_count",
    type: "gauge",
    help: "The total number of registered users, partitioned by status.",
    labels: ["status"],
    scope: "global",
    values: { status: ["active", "dormant", "suspended"] },
  },
  {
    name: "coderd_api_websocket_durations_seconds",
    type: "histogram",
    help: "Websocket duration distribution of requests in seconds.",
    labels: ["path"],
    scope: "global",
    values: { path: ["/api/v2/workspaceagents/me/rpc"] },
    buckets: [0.1, 1, 60, 600, 3600, 36000],
  },
  {
    name: "coderd_build_info",
    type: "gauge",
    help: "Describes the current build/version of the Coder server. Value is always 1.",
    labels: ["revision", "version"],
    scope: "global",
    values: { revision: ["0a5b7f2"], version: ["v2.24.1+0a5b7f2"] },
  },
  {
    name: "coderd_experiments",
    type: "gauge",
    help: "Indicates whether each experiment is enabled (1) or not (0)",
    labels: ["experiment"],
    scope: "global",
    values: { experiment: ["notifications", "workspace-usage", "web-push"] },
  },
  // Database.
  {
    name: "coderd_db_query_latencies_seconds",
    type: "histogram",
    help: "Latency distribution of queries in seconds.",
    labels: ["query"],
    scope: "global",
    values: {
      query: ["GetWorkspaceByID", "GetWorkspaceAgentByID", "InsertWorkspaceBuild", "GetUserByID"],
    },
    buckets: LATENCY_BUCKETS,
    flag: DB_METRICS,
  },
  {
    name: "coderd_db_query_counts_total",
    type: "counter",
    help: "Total number of queries labelled by HTTP route, method, and query name.",
    labels: ["method", "query", "route"],
    scope: "global",
    values: {
      method: ["GET"],
      query: ["GetWorkspaceByID", "GetUserByID"],
      route: ["/api/v2/workspaces/{workspace}", "/api/v2/users/me"],
    },
    flag: DB_METRICS,
  },
  {
    name: "coderd_db_tx_duration_seconds",
    type: "histogram",
    help: "Duration of transactions in seconds.",
    labels: ["success", "tx_id"],
    scope: "global",
    values: { success: ["true", "false"], tx_id: ["unnamed", "workspace_build"] },
    buckets: LATENCY_BUCKETS,
  },
  // Licensing.
  ...(
    [
      ["coderd_license_active_users", "The number of active users."],
      ["coderd_license_errors", "The number of active license errors."],
      ["coderd_license_limit_users", "The user seats limit based on the active Coder license."],
      [
        "coderd_license_user_limit_enabled",
        "Returns 1 if the current license enforces the user limit.",
      ],
      ["coderd_license_warnings", "The number of active license warnings."],
    ] as const
  ).map(
    ([name, help]): CatalogMetric => ({ name, type: "gauge", help, labels: [], scope: "global" }),
  ),
  // Provisioners.
  {
    name: "coderd_provisionerd_jobs_current",
    type: "gauge",
    help: "The number of currently running provisioner jobs.",
    labels: ["provisioner"],
    scope: "global",
    values: { provisioner: ["terraform"] },
  },
  {
    name: "coderd_provisionerd_num_daemons",
    type: "gauge",
    help: "The number of provisioner daemons.",
    labels: [],
    scope: "global",
  },
  {
    name: "coderd_provisionerd_job_timings_seconds",
    type: "histogram",
    help: "The provisioner job time duration in seconds.",
    labels: ["provisioner", "status"],
    scope: "global",
    values: { provisioner: ["terraform"], status: ["success", "failed"] },
    buckets: BUILD_BUCKETS,
  },
  // OAuth2 external rate limits.
  {
    name: "coderd_oauth2_external_requests_rate_limit",
    type: "gauge",
    help: "The total number of allowed requests per interval.",
    labels: ["name", "resource"],
    scope: "global",
    values: { name: ["github"], resource: ["core", "graphql"] },
  },
  {
    name: "coderd_oauth2_external_requests_rate_limit_total",
    type: "gauge",
    help: "DEPRECATED: use coderd_oauth2_external_requests_rate_limit instead",
    labels: ["name", "resource"],
    scope: "global",
    values: { name: ["github"], resource: ["core", "graphql"] },
    deprecated: { replacement: "coderd_oauth2_external_requests_rate_limit" },
  },
  {
    name: "coderd_oauth2_external_requests_total",
    type: "counter",
    help: "The total number of api calls made to external oauth2 providers. 'status_code' will be 0 if the request failed with no response.",
    labels: ["name", "source", "status_code"],
    scope: "global",
    values: {
      name: ["github"],
      source: ["ValidateToken", "AppInstallations"],
      status_code: ["200"],
    },
  },
  // Pubsub and tailnet.
  {
    name: "coder_pubsub_connected",
    type: "gauge",
    help: "Whether we are connected (1) or not connected (0) to postgres",
    labels: [],
    scope: "global",
  },
  {
    name: "coder_pubsub_messages_total",
    type: "counter",
    help: "Total number of messages received from postgres",
    labels: ["size"],
    scope: "global",
    values: { size: ["normal", "colossal"] },
  },
  {
    name: "coder_servertailnet_open_connections",
    type: "gauge",
    help: "Total number of TCP connections currently open to workspace agents.",
    labels: ["network"],
    scope: "global",
    values: { network: ["tcp"] },
  },
  // Go runtime and process (client_golang collectors).
  {
    name: "go_gc_duration_seconds",
    type: "summary",
    help: "A summary of the pause duration of garbage collection cycles.",
    labels: [],
    scope: "global",
  },
  {
    name: "go_goroutines",
    type: "gauge",
    help: "Number of goroutines that currently exist.",
    labels: [],
    scope: "global",
  },
  {
    name: "go_info",
    type: "gauge",
    help: "Information about the Go environment.",
    labels: ["version"],
    scope: "global",
    values: { version: ["go1.24.4"] },
  },
  {
    name: "go_memstats_alloc_bytes",
    type: "gauge",
    help: "Number of bytes allocated and still in use.",
    labels: [],
    scope: "global",
  },
  {
    name: "go_memstats_alloc_bytes_total",
    type: "counter",
    help: "Total number of bytes allocated, even if freed.",
    labels: [],
    scope: "global",
  },
  {
    name: "go_threads",
    type: "gauge",
    help: "Number of OS threads created.",
    labels: [],
    scope: "global",
  },
  {
    name: "process_cpu_seconds_total",
    type: "counter",
    help: "Total user and system CPU time spent in seconds.",
    labels: [],
    scope: "global",
  },
  {
    name: "process_open_fds",
    type: "gauge",
    help: "Number of open file descriptors.",
    labels: [],
    scope: "global",
  },
  {
    name: "process_resident_memory_bytes",
    type: "gauge",
    help: "Resident memory size in bytes.",
    labels: [],
    scope: "global",
  },
  {
    name: "process_start_time_seconds",
    type: "gauge",
    help: "Start time of the process since unix epoch in seconds.",
    labels: [],
    scope: "global",
  },
  {
    name: "promhttp_metric_handler_requests_total",
    type: "counter",
    help: "Total number of scrapes by HTTP status code.",
    labels: ["code"],
    scope: "global",
    values: { code: ["200", "500", "503"] },
  },
];

/** Deprecated metric names and what replaces each. */
export function deprecatedMetrics(): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of CATALOG) if (m.deprecated) out.set(m.name, m.deprecated.replacement);
  return out;
}
