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

test("the reference has a column per covered Coder release", () => {
  const doc = metricsReference();
  assert.match(
    doc,
    /\| metric \| type \| labels \| enabled by \| since \| v2\.33 \| v2\.34 \| v2\.35 \| main \|/,
  );
  assert.match(
    doc,
    /\| `coderd_build_info` \| gauge \| `revision`, `version` \| always \| v2\.33 \| ✓ \| ✓ \| ✓ \| ✓ \|/,
  );
  assert.match(
    doc,
    /\| `coder_ai_gateway_interceptions_total` \|[^\n]*\| v2\.35 \| — \| — \| ✓ \| ✓ \|/,
  );
});

test("the reference says what the presets do to a deprecated and a per-workspace metric", () => {
  const doc = metricsReference();
  assert.match(
    doc,
    /\| `coderd_api_workspace_latest_build_total` \|.*deprecated \(v2\.11\) → `coderd_api_workspace_latest_build`; removed in v2\.30.* \| dropped \|/,
  );
  assert.match(
    doc,
    /\| `coderd_agentstats_rx_bytes` \|.*\| sum without `agent_name`, `username`, `workspace_name` \|/,
  );
  assert.match(
    doc,
    /\| `agent_sessions_total` \|.*`…_COLLECT_AGENT_STATS`.*\| sum \(running total\) without `agent_name`, `username`, `workspace_name` \|/,
  );
  assert.match(
    doc,
    /\| `coder_aibridged_tokens_total` \|.* \| kept \| sum \(running total\) without `initiator_id` \|/,
  );
});
