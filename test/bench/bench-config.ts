// How the benchmarks and the soak run the exporter: its configuration, and
// the NODE_OPTIONS the sidecar gets with the CRD's default resources.
import { resolveSpec } from "../../controller/api/defaults.ts";
import { exporterNodeOptions } from "../../controller/desired/exporter-heap.ts";

/** NODE_OPTIONS of the sidecar with default resources (limits.memory 256Mi). */
export const SIDECAR_NODE_OPTIONS = exporterNodeOptions(
  resolveSpec({}).exporter.resources?.limits?.memory,
);

/**
 * Ten rules of the kind a platform team writes for Coder, as a YAML list of
 * relabel_config entries (what promref's `--rules` takes).
 */
export const BENCH_RULES = `
  - {source_labels: [__name__], regex: "go_.*", action: drop}
  - {source_labels: [__name__], regex: "promhttp_.*", action: drop}
  - {source_labels: [__name__], regex: "(coderd|coder|agent|process)_.*", action: keep}
  - {source_labels: [__name__, path], regex: "coderd_api_.*;/api/v2/buildinfo", action: drop}
  - {regex: tailnet_node|template_version, action: labeldrop}
  - {source_labels: [agent_name], regex: main, target_label: agent_name, replacement: ""}
  - {source_labels: [status], target_label: status, action: lowercase}
  - {target_label: cluster, replacement: prod-eu}
  - source_labels: [__name__]
    regex: "coderd_agentstats_(.*)"
    target_label: __name__
    replacement: "coder_agentstats_$1"
  - {source_labels: [workspace_owner], regex: "(.+)", target_label: username, replacement: "$1"}
`;

/** The exporter configuration of the benchmarks: the ten rules, aggregation, presets, PII. */
export const BENCH_CONFIG = `
metric_relabel_configs:${BENCH_RULES}aggregate:
  - metrics: ["coder_agentstats_*"]
    without: [username, workspace_name, agent_name]
presets: [drop_deprecated, per_template]
pii:
  hash_labels: [username, workspace_owner]
`;
