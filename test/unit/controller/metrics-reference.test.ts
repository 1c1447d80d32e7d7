import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { metricsReference } from "../../tools/metrics-reference.ts";

test("docs/metrics.md is generated from the metric catalogue (run `make generate`)", () => {
  assert.equal(
    readFileSync(resolve(import.meta.dirname, "../../../docs/metrics.md"), "utf8"),
    metricsReference(),
  );
});

test("the reference says what the presets do to a deprecated and a per-workspace metric", () => {
  const doc = metricsReference();
  assert.match(
    doc,
    /\| `coderd_api_workspace_latest_build_total` \|.*deprecated → `coderd_api_workspace_latest_build` \| dropped \|/,
  );
  assert.match(
    doc,
    /\| `coderd_agentstats_rx_bytes` \|.*\| sum without `agent_name`, `username`, `workspace_name` \|/,
  );
});
