// The Coder metric catalogue and the fixture generated from it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CATALOG, deprecatedMetrics } from "../../../controller/coder/catalog.ts";
import { generateFixture } from "../../support/coder-fixture.ts";
import { isValidLabelName, isValidMetricName } from "../../../controller/exporter/model/model.ts";
import { parse } from "../../../controller/exporter/parse/parse.ts";

describe("catalogue", () => {
  it("names, labels and types are valid and unique", () => {
    const seen = new Set<string>();
    for (const m of CATALOG) {
      assert.ok(isValidMetricName(m.name), m.name);
      assert.ok(!seen.has(m.name), `duplicate ${m.name}`);
      seen.add(m.name);
      for (const l of m.labels) assert.ok(isValidLabelName(l), `${m.name}: ${l}`);
      if (m.type === "histogram")
        assert.ok(m.buckets && m.buckets.length > 0, `${m.name} needs buckets`);
    }
  });
  it("lists the metrics the issue names, with their gating flags", () => {
    const byName = new Map(CATALOG.map((m) => [m.name, m]));
    for (const name of [
      "coderd_agents_connections",
      "coderd_agents_up",
      "coderd_agentstats_rx_bytes",
      "coderd_agentstats_tx_bytes",
      "coderd_api_request_latencies_seconds",
      "coderd_api_requests_processed_total",
      "coderd_workspace_builds_total",
      "coderd_provisionerd_jobs_current",
      "coderd_license_active_users",
      "go_goroutines",
      "process_cpu_seconds_total",
    ]) {
      assert.ok(byName.has(name), name);
    }
    assert.equal(byName.get("coderd_api_request_latencies_seconds")!.type, "histogram");
    assert.equal(
      byName.get("coderd_agentstats_rx_bytes")!.flag,
      "CODER_PROMETHEUS_COLLECT_AGENT_STATS",
    );
    assert.equal(
      byName.get("coderd_db_query_latencies_seconds")!.flag,
      "CODER_PROMETHEUS_COLLECT_DB_METRICS",
    );
  });
  it("deprecated metrics name an existing replacement", () => {
    const deprecated = deprecatedMetrics();
    assert.equal(
      deprecated.get("coderd_api_workspace_latest_build_total"),
      "coderd_api_workspace_latest_build",
    );
    const names = new Set(CATALOG.map((m) => m.name));
    for (const replacement of deprecated.values()) assert.ok(names.has(replacement), replacement);
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
  it("parses, and has the catalogue's families with their types", () => {
    const fams = parse(generateFixture({ workspaces: 12 }));
    const byName = new Map(fams.map((f) => [f.name, f]));
    for (const m of CATALOG) {
      const f = byName.get(m.name);
      assert.ok(f, `missing ${m.name}`);
      assert.equal(f.type, m.type, m.name);
      assert.equal(f.help, m.help, m.name);
    }
    assert.equal(byName.get("coderd_agents_up")!.samples.length, 12, "one series per workspace");
  });
  it("scales per-workspace series with the workspace count", () => {
    const count = (n: number) =>
      parse(generateFixture({ workspaces: n })).reduce((a, f) => a + f.samples.length, 0);
    const a = count(10);
    const b = count(20);
    assert.ok(b > a && b < 2 * a + 500, `${a} → ${b}`);
  });
  it("honours the collection flags", () => {
    const text = generateFixture({
      workspaces: 3,
      agentStats: false,
      dbMetrics: false,
      deprecated: false,
    });
    assert.ok(!text.includes("coderd_agentstats_"));
    assert.ok(!text.includes("coderd_db_query_latencies_seconds"));
    assert.ok(!text.includes("coderd_api_workspace_latest_build_total"));
    assert.ok(text.includes("coderd_agents_up"));
  });
});
