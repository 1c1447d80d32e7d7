// The CoderMetrics API, v1alpha1: the one source of truth. The CRD manifest
// (charts/ and manifests/) is generated from these schemas and the TypeScript
// types are derived from them, so the two cannot drift.
import { type SchemaOptions, type Static, Type } from "@sinclair/typebox";
import { RELABEL_ACTIONS } from "./relabel-actions.ts";
import { Duration, Quantity, StringEnum, StringMap, withRules } from "./schema.ts";

export const group = "coder-metrics.io";
export const version = "v1alpha1";
export const apiVersion = `${group}/${version}`;
export const kind = "CoderMetrics";
export const plural = "codermetrics";
export const singular = "codermetric";
export const shortNames = ["cmetrics"];

const dnsLabel = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

const labelSelector = (options: SchemaOptions) =>
  Type.Object(
    {
      matchLabels: Type.Optional(StringMap()),
      matchExpressions: Type.Optional(
        Type.Array(
          Type.Object({
            key: Type.String({ minLength: 1 }),
            operator: StringEnum(["In", "NotIn", "Exists", "DoesNotExist"] as const),
            values: Type.Optional(Type.Array(Type.String())),
          }),
        ),
      ),
    },
    { description: "A standard Kubernetes label selector.", ...options },
  );
export type LabelSelector = Static<ReturnType<typeof labelSelector>>;

// Prometheus's own validation rules for relabel_config, as CEL, so kubectl
// refuses what Prometheus would refuse. Regex *syntax* (RE2) cannot be
// checked here: the controller reports it in status. Label names are
// validated as Prometheus 3 does by default (UTF-8): any non-empty string
// (Kubernetes strings are UTF-8), so `http.route` is a valid name.
const labelNameString = () => Type.String({ minLength: 1, maxLength: 256 });

const RelabelConfig = withRules(
  Type.Object({
    sourceLabels: Type.Optional(Type.Array(labelNameString(), { maxItems: 32 })),
    separator: Type.Optional(Type.String({ maxLength: 64 })),
    targetLabel: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    regex: Type.Optional(Type.String({ maxLength: 4096 })),
    modulus: Type.Optional(Type.Integer({ minimum: 1 })),
    replacement: Type.Optional(Type.String({ maxLength: 1024 })),
    action: StringEnum(RELABEL_ACTIONS, { default: "replace" }),
  }),
  [
    {
      rule: "!(self.action in ['replace','hashmod','lowercase','uppercase','keepequal','dropequal']) || has(self.targetLabel)",
      message:
        "targetLabel is required for actions replace, hashmod, lowercase, uppercase, keepequal and dropequal",
    },
    {
      rule: "self.action != 'hashmod' || has(self.modulus)",
      message: "modulus is required for action hashmod",
    },
    {
      rule: "!(self.action in ['labeldrop','labelkeep']) || (!has(self.sourceLabels) && !has(self.targetLabel) && !has(self.modulus) && !has(self.replacement) && !has(self.separator))",
      message: "labeldrop and labelkeep take only regex",
    },
    {
      rule: "!(self.action in ['keepequal','dropequal']) || (!has(self.regex) && !has(self.modulus) && !has(self.replacement) && !has(self.separator))",
      message: "keepequal and dropequal take only sourceLabels and targetLabel",
    },
    {
      rule: "!(self.action in ['lowercase','uppercase']) || !has(self.replacement)",
      message: "lowercase and uppercase take no replacement",
    },
  ],
);
export type RelabelConfig = Static<typeof RelabelConfig>;

const Aggregation = withRules(
  Type.Object({
    metrics: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: "Metric family names or globs (coderd_agentstats_*).",
    }),
    op: StringEnum(["sum", "max", "min", "count"] as const, { default: "sum" }),
    by: Type.Optional(Type.Array(labelNameString())),
    without: Type.Optional(Type.Array(labelNameString())),
    counterMode: Type.Optional(
      StringEnum(["stateful", "stateless"] as const, {
        description:
          "How sum treats counters, histograms and summaries: stateful (the default) serves a running total that never goes down when workspaces stop or counters reset; stateless sums each scrape's series.",
      }),
    ),
  }),
  [
    {
      rule: "!(has(self.by) && has(self.without))",
      message: "set at most one of by and without (neither aggregates to one series)",
    },
  ],
);

const ExporterConfig = Type.Object(
  {
    metricRelabelings: Type.Optional(
      Type.Array(RelabelConfig, {
        maxItems: 256,
        description: "Prometheus metric_relabel_configs, applied in order.",
      }),
    ),
    dropMetrics: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: "Metric family names or globs to drop.",
      }),
    ),
    aggregate: Type.Optional(
      Type.Array(Aggregation, {
        description: "Aggregations; the first rule matching a family wins.",
      }),
    ),
    pii: Type.Optional(
      Type.Object(
        {
          hashLabels: Type.Optional(Type.Array(labelNameString())),
          dropLabels: Type.Optional(Type.Array(labelNameString())),
          hashLength: Type.Optional(
            Type.Integer({
              minimum: 8,
              maximum: 64,
              description: "Hex characters of the HMAC kept (default 16).",
            }),
          ),
          hashKeySecretRef: Type.Optional(
            Type.Object({
              name: Type.String({ minLength: 1 }),
              key: Type.String({ minLength: 1 }),
            }),
          ),
        },
        {
          description:
            "Hash or drop labels that carry personal data. When set, coderd listens on the Pod's loopback only and the Service exposes only the exporter's port, so the raw values are not reachable from the cluster.",
        },
      ),
    ),
    seriesLimit: Type.Optional(Type.Integer({ minimum: 0, description: "0 means no limit." })),
    counterStateTTL: Type.Optional(
      withRules(
        Duration({
          description:
            "How long the running totals of aggregated counters remember a series that is no longer scraped (default 15m).",
        }),
        [{ rule: "duration(self) > duration('0s')", message: "must be positive" }],
      ),
    ),
    presets: Type.Optional(
      Type.Array(StringEnum(["drop_deprecated", "per_template"] as const), {
        "x-kubernetes-list-type": "set",
        description:
          "drop_deprecated drops metrics Coder deprecated (once every supported Coder release serves the replacement); per_template aggregates every family with per-workspace labels (workspace_name, username, agent_name, …) to per-template series.",
      }),
    ),
  },
  { default: {} },
);
export type ExporterConfig = Static<typeof ExporterConfig>;

const Resources = Type.Object(
  {
    requests: Type.Optional(
      Type.Unsafe<Record<string, string | number>>({
        type: "object",
        additionalProperties: Quantity(),
      }),
    ),
    limits: Type.Optional(
      Type.Unsafe<Record<string, string | number>>({
        type: "object",
        additionalProperties: Quantity(),
      }),
    ),
  },
  {
    default: { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "256Mi" } },
  },
);

export const CoderMetricsSpec = withRules(
  Type.Object(
    {
      selector: labelSelector({
        default: { matchLabels: { "app.kubernetes.io/name": "coder" } },
        description:
          "Selects the Coder Deployments in this namespace. Default: app.kubernetes.io/name=coder (what Coder's Helm chart sets).",
      }),
      coderContainer: Type.String({
        pattern: dnsLabel,
        default: "coder",
        description: "The coderd container's name.",
      }),
      coder: Type.Object(
        {
          address: Type.String({
            default: "0.0.0.0:2112",
            maxLength: 128,
            pattern: "^(\\[[0-9a-fA-F:.]+\\]|[^:\\[\\]]*):[0-9]{1,5}$",
            description:
              "CODER_PROMETHEUS_ADDRESS: host:port coderd serves metrics on. With exporter.config.pii set, the host becomes 127.0.0.1 (the port is kept): only the exporter in the Pod reads coderd's raw metrics.",
          }),
          collectAgentStats: Type.Optional(
            Type.Boolean({
              description: "CODER_PROMETHEUS_COLLECT_AGENT_STATS; unset leaves Coder's default.",
            }),
          ),
          collectDBMetrics: Type.Optional(
            Type.Boolean({
              description: "CODER_PROMETHEUS_COLLECT_DB_METRICS; unset leaves Coder's default.",
            }),
          ),
          aggregateAgentStatsBy: Type.Optional(
            Type.Array(
              StringEnum(["agent_name", "template_name", "username", "workspace_name"] as const),
              {
                minItems: 1,
                "x-kubernetes-list-type": "set",
                description: "CODER_PROMETHEUS_AGGREGATE_AGENT_STATS_BY.",
              },
            ),
          ),
          existingSettings: StringEnum(["Respect", "Override"] as const, {
            default: "Respect",
            description:
              "What to do when the coderd container already sets a CODER_PROMETHEUS_* variable that coder-metrics does not own: Respect keeps the user's value (and scrapes the address it gives), Override replaces it.",
          }),
        },
        { default: {} },
      ),
      service: Type.Object(
        {
          name: Type.String({ pattern: dnsLabel, maxLength: 63, default: "coder-prom" }),
          labels: Type.Optional(StringMap()),
          annotations: Type.Optional(StringMap()),
        },
        { default: {} },
      ),
      monitor: Type.Object(
        {
          mode: StringEnum(["Auto", "ServiceMonitor", "PodMonitor", "Disabled"] as const, {
            default: "Auto",
            description:
              "Auto creates a ServiceMonitor only when the monitoring.coreos.com CRD is served.",
          }),
          target: StringEnum(["Exporter", "Coderd"] as const, {
            default: "Exporter",
            description: "Scrape the sidecar exporter (transformed series) or coderd directly.",
          }),
          interval: Duration({ default: "30s" }),
          scrapeTimeout: Type.Optional(Duration()),
          labels: Type.Optional(
            StringMap({
              description: "e.g. release: kube-prometheus-stack, so your Prometheus selects it.",
            }),
          ),
          honorLabels: Type.Boolean({ default: false }),
        },
        {
          default: {},
          "x-kubernetes-validations": [
            {
              rule: "!has(self.scrapeTimeout) || duration(self.scrapeTimeout) <= duration(self.interval)",
              message: "scrapeTimeout must not exceed interval",
            },
          ],
        },
      ),
      prometheusAnnotations: Type.Object(
        {
          service: Type.Boolean({
            default: false,
            description:
              "Put prometheus.io/scrape, port, path and scheme annotations on the Service (the prometheus-community chart's kubernetes-service-endpoints job).",
          }),
          pods: Type.Boolean({
            default: false,
            description:
              "Put the same annotations on coderd's pod template (its kubernetes-pods job). Changing this rolls coderd's pods.",
          }),
        },
        {
          default: {},
          description: "Annotation-based discovery, for Prometheus without the Operator.",
        },
      ),
      exporter: Type.Object(
        {
          enabled: Type.Boolean({ default: true }),
          image: Type.Optional(
            Type.String({
              minLength: 1,
              description:
                "Default: the controller's own image. Any other image must match the controller's --allowed-exporter-images, else nothing is injected (CoderConfigured: ExporterImageNotAllowed).",
            }),
          ),
          imagePullPolicy: Type.Optional(StringEnum(["Always", "IfNotPresent", "Never"] as const)),
          port: Type.Integer({ minimum: 1024, maximum: 65535, default: 2113 }),
          resources: Resources,
          config: ExporterConfig,
        },
        { default: {} },
      ),
    },
    { default: {} },
  ),
  [
    {
      rule: "!has(self.monitor) || !has(self.exporter) || !(self.monitor.target == 'Exporter' && !self.exporter.enabled)",
      message:
        "monitor.target Exporter needs exporter.enabled; set monitor.target to Coderd to scrape coderd directly",
      fieldPath: ".monitor.target",
    },
    {
      rule: "!has(self.exporter) || !has(self.coder) || !self.exporter.enabled || int(self.coder.address.substring(self.coder.address.lastIndexOf(':') + 1)) != self.exporter.port",
      message: "exporter.port must differ from the port in coder.address",
      fieldPath: ".exporter.port",
    },
    {
      rule: "!has(self.exporter) || !has(self.exporter.config) || !has(self.exporter.config.pii) || !has(self.monitor) || self.monitor.target != 'Coderd'",
      message:
        "monitor.target Coderd scrapes coderd's raw metrics, which carry the user names and e-mail addresses exporter.config.pii is meant to hash or drop; scrape the exporter (monitor.target: Exporter) or remove exporter.config.pii",
      fieldPath: ".monitor.target",
    },
  ],
);
export type CoderMetricsSpec = Static<typeof CoderMetricsSpec>;

const Condition = Type.Object({
  type: Type.String({ maxLength: 316 }),
  status: StringEnum(["True", "False", "Unknown"] as const),
  reason: Type.String({ maxLength: 1024, pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$" }),
  message: Type.String({ maxLength: 32768 }),
  lastTransitionTime: Type.String({ format: "date-time" }),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type Condition = Static<typeof Condition>;

export const CoderMetricsStatus = Type.Object({
  observedGeneration: Type.Optional(Type.Integer()),
  conditions: Type.Optional(
    Type.Array(Condition, {
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
  ),
  deployments: Type.Optional(
    Type.Array(
      Type.Object({
        name: Type.String(),
        coderAddress: Type.String(),
        configured: Type.Boolean(),
        message: Type.Optional(Type.String()),
      }),
      { "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] },
    ),
  ),
  service: Type.Optional(Type.String()),
  monitor: Type.Optional(Type.Object({ kind: Type.String(), name: Type.String() })),
  scrapeConfig: Type.Optional(
    Type.String({
      description:
        "A ready-to-paste Prometheus scrape_configs job for Prometheus without the Operator.",
    }),
  ),
});
export type CoderMetricsStatus = Static<typeof CoderMetricsStatus>;

export interface CoderMetrics {
  apiVersion: typeof apiVersion;
  kind: typeof kind;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    labels?: Record<string, string>;
  };
  spec: CoderMetricsSpec;
  status?: CoderMetricsStatus;
}
