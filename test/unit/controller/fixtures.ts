// Small builders for the controller's unit tests.
import { resolveSpec } from "../../../controller/api/defaults.ts";
import type { CoderMetrics, CoderMetricsSpec } from "../../../controller/api/v1alpha1.ts";

export function coderMetrics(
  spec: unknown = {},
  name = "coder",
  namespace = "coder",
): CoderMetrics & { spec: CoderMetricsSpec } {
  return {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace, uid: "uid-1", generation: 1 },
    spec: resolveSpec(spec),
  };
}
