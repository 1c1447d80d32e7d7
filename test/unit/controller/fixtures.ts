// Small builders for the controller's unit tests.
import type { V1EnvVar } from "@kubernetes/client-node";
import { resolveSpec } from "../../../controller/api/defaults.ts";
import type { CoderMetrics, CoderMetricsSpec } from "../../../controller/api/v1alpha1.ts";
import { planCoderd } from "../../../controller/desired/coderd.ts";
import { coderDeployment } from "../../support/coder-deployment.ts";

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

/** planCoderd for a CR with `specPatch` and a bare Coder Deployment (no chart env) with `env`. */
export function planFor(specPatch: unknown = {}, env: V1EnvVar[] = [], ownedEnv: string[] = []) {
  const cr = coderMetrics(specPatch);
  return planCoderd({
    cr,
    spec: cr.spec,
    deployment: coderDeployment({ env, helmChart: false }),
    ownedEnv: new Set(ownedEnv),
    exporterImage: "ghcr.io/example/coder-metrics:1.0.0",
    exporterConfigMap: "coder-exporter-config",
  });
}
