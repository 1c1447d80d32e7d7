// The Coder metric catalogue (versions, settings, label values), the fixture
// generated from it, and the presets that select families by their labels.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CATALOG,
  type CatalogMetric,
  deprecatedMetrics,
  droppableDeprecated,
  FORWARDED_HELP,
  PER_TEMPLATE_REMOVED_LABELS,
  PER_WORKSPACE_LABELS,
  PII_LABELS,
  presentIn,
  releaseRank,
  VERSIONS,
  versionsOf,
} from "../../../controller/coder/catalog.ts";
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import { isValidLabelName, isValidMetricName } from "../../../controller/exporter/model/model.ts";
import { parse } from "../../../controller/exporter/parse/parse.ts";
import { Pipeline } from "../../../controller/exporter/pipeline.ts";
import { fixtureFamilies, generateFixture } from "../../support/coder-fixture.ts";

const byName = new Map(CATALOG.map((m) => [m.name, m]));
const get = (name: string): CatalogMetric => {
  const m = byName.get(name);
  assert.ok(m, `${name} is in the catalogue`);
  return m;
};
const AGENT_STATS = "CODER_PROMETHEUS_COLLECT_AGENT_STATS";
const AGGREGATION_LABELS = ["agent_name", "template_name", "username", "workspace_name"];

describe("catalogue", () => {
  it("names, labels, types and versions are valid; names are unique", () => {
    const seen = new Set<string>();
    for (const m of CATALOG) {
      const name = m.namePattern ? m.name.replace(/<[a-z]+>/g, "1") : m.name;
      assert.ok(isValidMetricName(name), m.name);
      assert.equal(m.namePattern ?? false, name !== m.name, `${m.name}: namePattern`);
      assert.ok(!seen.has(m.name), `duplicate ${m.name}`);
      seen.add(m.name);
      assert.ok(["counter", "gauge", "histogram", "summary"].includes(m.type), m.name);
      assert.deepEqual(
        [...m.labels].sort(),
        m.labels,
        `${m.name}: labels sorted as coderd writes them`,
      );
      for (const l of m.labels) assert.ok(isValidLabelName(l), `${m.name}: ${l}`);
      for (const l of Object.keys(m.values ?? {}))
        assert.ok(m.labels.includes(l), `${m.name}: values for a label it lacks (${l})`);
      assert.doesNotThrow(() => releaseRank(m.since), m.name);
      if (m.until) assert.ok(releaseRank(m.until) > releaseRank(m.since), `${m.name}: until`);
      if (m.buckets) {
        assert.equal(m.type, "histogram", `${m.name}: buckets on a ${m.type}`);
        for (let i = 1; i < m.buckets.length; i++)
          assert.ok(m.buckets[i]! > m.buckets[i - 1]!, `${m.name}: buckets ascending`);
      }
    }
  });

  it("covers the three newest Coder releases and main", () => {
    assert.deepEqual([...VERSIONS], ["v2.33", "v2.34", "v2.35", "main"]);
    assert.ok(
      releaseRank("v2.33") < releaseRank("v2.35") && releaseRank("v2.35") < releaseRank("main"),
    );
    assert.equal(releaseRank("<=v2.32"), releaseRank("v2.32"));
  });

  it("agent-forwarded families: only with agent stats, the agent's type, the forwarded HELP and the aggregation labels", () => {
    const forwarded = CATALOG.filter((m) => m.origin === "agent");
    assert.ok(forwarded.length >= 100, `${forwarded.length} forwarded families`);
    for (const m of forwarded) {
      assert.equal(m.enabledBy, AGENT_STATS, m.name);
      assert.ok(m.type === "counter" || m.type === "gauge", `${m.name}: ${m.type}`);
      assert.equal(m.help, FORWARDED_HELP, m.name);
      for (const l of AGGREGATION_LABELS) assert.ok(m.labels.includes(l), `${m.name}: ${l}`);
      assert.equal(m.scope, "workspace", m.name);
    }
    for (const name of [
      "agent_sessions_total",
      "agent_reconnecting_pty_connections_total",
      "agent_ssh_server_failed_connections_total",
      "agent_scripts_executed_total",
      "coderd_agentstats_startup_script_seconds",
      "coderd_agentstats_currently_reachable_peers",
      "magicsock_recv_data_derp",
      "netcheck_report",
      "derp_home_change",
      "wgengine_major_changes",
    ])
      assert.equal(get(name).origin, "agent", name);
    assert.deepEqual(get("agent_sessions_total").labels, [
      "agent_name",
      "magic_type",
      "pty",
      "template_name",
      "username",
      "workspace_name",
    ]);
    // coderd's own DB-derived agent stats need the same setting but are not forwarded.
    assert.equal(get("coderd_agentstats_rx_bytes").origin, "coderd");
    assert.equal(get("coderd_agentstats_rx_bytes").enabledBy, AGENT_STATS);
    assert.deepEqual(get("coderd_agentstats_rx_bytes").labels, [
      "agent_name",
      "username",
      "workspace_name",
    ]);
  });

  it("has coderd's families beyond the docs table, with their settings", () => {
    for (const prefix of [
      "coder_pubsub_",
      "coderd_authz_",
      "coderd_open_file",
      "coderd_notifications_",
      "coderd_prometheusmetrics_",
      "coderd_db_tx_",
      "coderd_workspace_creation_",
      "coderd_proxyhealth_",
      "coderd_prebuilt_workspaces_",
      "go_sql_",
      "coder_derp_server_",
    ])
      assert.ok(
        CATALOG.some((m) => m.name.startsWith(prefix)),
        `a family named ${prefix}*`,
      );
    for (const name of [
      "coderd_insights_applications_usage_seconds",
      "coderd_lifecycle_autobuild_execution_duration_seconds",
      "coderd_db_tx_executions_count",
      "coderd_provisioner_job_queue_wait_seconds",
      "coderd_workspace_builds_enqueued_total",
    ])
      get(name);
    assert.equal(get("coderd_db_tx_duration_seconds").enabledBy, "always");
    assert.equal(
      get("coderd_db_query_latencies_seconds").enabledBy,
      "CODER_PROMETHEUS_COLLECT_DB_METRICS",
    );
    assert.equal(
      get("coderd_prometheusmetrics_metrics_aggregator_store_size").enabledBy,
      AGENT_STATS,
    );
  });

  it("versions: what each covered release serves", () => {
    assert.equal(get("coderd_build_info").since, "v2.33");
    assert.deepEqual(versionsOf(get("coderd_api_active_users_duration_hour")), [...VERSIONS]);
    assert.equal(get("coderd_template_workspace_build_duration_seconds").since, "v2.31");
    // The AI Gateway names arrived in v2.35; the old prefix stays as a deprecated alias.
    assert.deepEqual(versionsOf(get("coder_ai_gateway_interceptions_total")), ["v2.35", "main"]);
    assert.deepEqual(get("coder_aibridged_interceptions_total").deprecated, {
      replacement: "coder_ai_gateway_interceptions_total",
      since: "v2.35",
    });
    // Removed before the covered releases.
    const removed = get("coderd_api_workspace_latest_build_total");
    assert.deepEqual(versionsOf(removed), []);
    assert.ok(!presentIn(removed, "v2.33"));
  });

  it("label values and bucket bounds as coderd writes them", () => {
    assert.deepEqual(get("coderd_workspace_builds_total").values, {
      status: ["success", "failed"],
      workspace_transition: ["START", "STOP", "DESTROY"],
    });
    assert.deepEqual(get("coderd_workspace_latest_build_status").values?.workspace_transition, [
      "start",
      "stop",
      "delete",
    ]);
    assert.ok(get("coderd_workspace_latest_build_status").values?.status?.includes("succeeded"));
    assert.deepEqual(
      get("coderd_api_websocket_durations_seconds").buckets,
      [0.001, 1, 60, 3600, 54000, 108000],
    );
    assert.deepEqual(
      get("coderd_db_query_latencies_seconds").buckets,
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
    assert.deepEqual(
      get("coderd_agents_first_connection_seconds").buckets,
      [1, 10, 30, 60, 120, 300, 600, 1800, 3600],
    );
  });

  it("DB-derived families every replica serves alike are marked", () => {
    for (const name of [
      "coderd_agents_connections",
      "coderd_workspace_latest_build_status",
      "coderd_license_active_users",
      "coderd_prebuilt_workspaces_desired",
      "coderd_api_active_users_duration_hour",
    ])
      assert.equal(get(name).replicas, "same", name);
    assert.equal(get("coderd_api_requests_processed_total").replicas, undefined);
  });

  it("deprecated families name a replacement in the catalogue; drop_deprecated drops only those replaced in every covered release", () => {
    const deprecated = deprecatedMetrics();
    assert.equal(
      deprecated.get("coderd_api_workspace_latest_build_total"),
      "coderd_api_workspace_latest_build",
    );
    for (const replacement of deprecated.values()) get(replacement);
    const droppable = droppableDeprecated();
    assert.ok(droppable.includes("coderd_api_workspace_latest_build_total"));
    assert.ok(
      !droppable.includes("coder_aibridged_interceptions_total"),
      "no replacement in v2.34",
    );
  });

  it("PII labels are all per-workspace labels, so per_template removes them", () => {
    for (const l of PII_LABELS)
      assert.ok((PER_WORKSPACE_LABELS as readonly string[]).includes(l), l);
    for (const l of PER_WORKSPACE_LABELS)
      assert.ok((PER_TEMPLATE_REMOVED_LABELS as readonly string[]).includes(l), l);
  });
});

describe("fixture", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    assert.equal(
      generateFixture({ workspaces: 7, seed: 3 }),
      generateFixture({ workspaces: 7, seed: 3 }),
    );
    assert.notEqual(
      generateFixture({ workspaces: 7, seed: 3 }),
      generateFixture({ workspaces: 7, seed: 4 }),
    );
  });

  it("parses, and has the release's families with their types and HELP", () => {
    const fams = parse(generateFixture({ workspaces: 12 }));
    const served = new Map(fams.map((f) => [f.name, f]));
    for (const m of fixtureFamilies({})) {
      const f = served.get(m.name);
      assert.ok(f, `missing ${m.name}`);
      assert.equal(f.type, m.type, m.name);
      assert.equal(f.help, m.help, m.name);
    }
    assert.deepEqual(
      [...served.keys()],
      fixtureFamilies({}).map((m) => m.name),
      "only the catalogue's families, sorted by name",
    );
    assert.equal(served.get("coderd_agents_up")!.samples.length, 12, "one series per workspace");
  });

  it("serves forwarded families only with agent stats, per-query DB families only with DB metrics", () => {
    const off = generateFixture({ workspaces: 3, agentStats: false, dbMetrics: false });
    const on = generateFixture({ workspaces: 3 });
    for (const name of [
      "agent_sessions_total",
      "magicsock_recv_data_derp",
      "coderd_agentstats_rx_bytes",
    ]) {
      assert.ok(!off.includes(`\n${name}{`), `${name} without agent stats`);
      assert.ok(on.includes(`\n${name}{`), `${name} with agent stats`);
    }
    assert.ok(!off.includes("coderd_db_query_latencies_seconds"));
    assert.ok(
      off.includes("coderd_db_tx_duration_seconds"),
      "the transaction metrics are always on",
    );
    assert.ok(off.includes("coderd_agents_up"));
  });

  it("serves the families of the release asked for", () => {
    const v234 = generateFixture({ workspaces: 2, version: "v2.34" });
    const v235 = generateFixture({ workspaces: 2, version: "v2.35" });
    assert.ok(!v234.includes("coder_ai_gateway_") && v235.includes("coder_ai_gateway_"));
    assert.match(
      v234,
      /^coderd_build_info\{revision="[0-9a-f]+",version="v2\.34\.\d+\+[0-9a-f]+"\} 1$/m,
    );
    assert.ok(!v235.includes("coderd_api_workspace_latest_build_total"), "removed before v2.33");
  });

  it("uses coderd's label values and bucket bounds", () => {
    const text = generateFixture({ workspaces: 40 });
    assert.match(
      text,
      /^coderd_workspace_builds_total\{status="failed",.*workspace_transition="DESTROY"\} /m,
    );
    assert.doesNotMatch(text, /^coderd_workspace_builds_total\{[^}]*workspace_transition="start"/m);
    assert.match(
      text,
      /^coderd_workspace_latest_build_status\{status="succeeded",.*workspace_transition="start"\} /m,
    );
    assert.match(text, /^coderd_agents_connections\{[^}]*status="connected"/m);
    assert.ok(
      text.includes(
        'coderd_api_websocket_durations_seconds_bucket{path="/api/v2/workspaceagents/me/rpc",le="108000"} ',
      ),
    );
    assert.match(
      text,
      /^agent_sessions_total\{agent_name="main",magic_type="ssh",pty="true",template_name="template-0",username="user00000",workspace_name="ws-00000"\} /m,
    );
  });

  it("scales per-workspace series with the workspace count", () => {
    const count = (n: number) =>
      parse(generateFixture({ workspaces: n })).reduce((a, f) => a + f.samples.length, 0);
    const a = count(10);
    const b = count(20);
    assert.ok(b > a && b < 2 * a + 500, `${a} → ${b}`);
  });
});

describe("presets select families by labels", () => {
  const run = (config: string, input: string) => {
    const parsed = parseExporterConfig(config);
    assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
    return new Pipeline(parsed.config).transform(input).body.toString();
  };

  it("per_template on a fixture with forwarded families leaves no series with a per-workspace or PII label", () => {
    const out = run("presets: [per_template]", generateFixture({ workspaces: 30 }));
    const labels = [...PER_WORKSPACE_LABELS, ...PII_LABELS];
    for (const line of out.split("\n")) {
      if (line.startsWith("#") || line === "") continue;
      for (const l of labels) assert.ok(!line.includes(`${l}="`), `${l} left in: ${line}`);
    }
    // Forwarded families are there, per template, still counters.
    assert.match(out, /^# TYPE agent_sessions_total counter$/m);
    assert.match(
      out,
      /^agent_sessions_total\{magic_type="ssh",pty="true",template_name="template-0"\} \S+$/m,
    );
    assert.match(out, /^# TYPE magicsock_recv_data_derp counter$/m);
    assert.match(
      out,
      /^coderd_workspace_builds_total\{status="success",template_name="template-0",workspace_transition="START"\} /m,
    );
  });

  it("per_template aggregates families the catalogue does not know, by their labels, and keeps their type", () => {
    const input = [
      "# HELP coderd_future_total A family from a newer Coder.",
      "# TYPE coderd_future_total counter",
      'coderd_future_total{template_name="t",username="alice",workspace_name="a"} 1',
      'coderd_future_total{template_name="t",username="bob",workspace_name="b"} 2',
      "# TYPE agent_future_seconds histogram",
      'agent_future_seconds_bucket{agent_name="main",le="1"} 1',
      'agent_future_seconds_bucket{agent_name="main",le="+Inf"} 2',
      'agent_future_seconds_sum{agent_name="main"} 3',
      'agent_future_seconds_count{agent_name="main"} 2',
      "# TYPE coderd_other gauge",
      'coderd_other{path="/x"} 4',
      "",
    ].join("\n");
    assert.equal(
      run("presets: [per_template]", input),
      [
        "# HELP coderd_future_total A family from a newer Coder.",
        "# TYPE coderd_future_total counter",
        'coderd_future_total{template_name="t"} 3',
        "# TYPE agent_future_seconds histogram",
        'agent_future_seconds_bucket{le="1.0"} 1', // Prometheus 3 reads a classic bucket bound as a float
        'agent_future_seconds_bucket{le="+Inf"} 2',
        "agent_future_seconds_sum 3",
        "agent_future_seconds_count 2",
        "# TYPE coderd_other gauge",
        'coderd_other{path="/x"} 4',
        "",
      ].join("\n"),
    );
  });

  it("per_template takes the highest latency instead of summing", () => {
    const input =
      "# TYPE coderd_agents_connection_latencies_seconds gauge\n" +
      'coderd_agents_connection_latencies_seconds{agent_name="main",derp_region="r",preferred="true",username="a",workspace_name="a"} 0.5\n' +
      'coderd_agents_connection_latencies_seconds{agent_name="main",derp_region="r",preferred="true",username="b",workspace_name="b"} 0.25\n';
    assert.equal(
      run("presets: [per_template]", input),
      '# TYPE coderd_agents_connection_latencies_seconds gauge\ncoderd_agents_connection_latencies_seconds{derp_region="r",preferred="true"} 0.5\n',
    );
  });

  it("per_template leaves families without per-workspace labels byte for byte", () => {
    const input =
      "# HELP go_gc_duration_seconds A summary.\n# TYPE go_gc_duration_seconds summary\n" +
      'go_gc_duration_seconds{quantile="0.5"} 0.001\ngo_gc_duration_seconds_sum 1\ngo_gc_duration_seconds_count 3\n' +
      "# TYPE coderd_provisionerd_workspace_build_timings_seconds histogram\n" +
      'coderd_provisionerd_workspace_build_timings_seconds_bucket{status="success",template_name="t",template_version="v1",workspace_transition="START",le="+Inf"} 1\n';
    assert.equal(run("presets: [per_template]", input), input);
  });

  it("a user's own aggregate rule still wins over the preset", () => {
    const input =
      "# TYPE coderd_agents_up gauge\n" +
      'coderd_agents_up{template_name="t",template_version="v1",username="a",workspace_name="a"} 1\n' +
      'coderd_agents_up{template_name="t",template_version="v2",username="b",workspace_name="b"} 1\n';
    assert.equal(
      run(
        "aggregate: [{metrics: [coderd_agents_up], op: count, by: [template_version]}]\npresets: [per_template]",
        input,
      ),
      '# TYPE coderd_agents_up gauge\ncoderd_agents_up{template_version="v1"} 1\ncoderd_agents_up{template_version="v2"} 1\n',
    );
  });
});
