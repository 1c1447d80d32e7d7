// Renders manifests/install.yaml: the chart's default install as plain YAML
// (namespace coder-metrics, the CRD, RBAC, the controller). `make manifests`
// writes it; test/unit/chart/manifests.test.ts fails when it drifts from the chart.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { helmOk, repoRoot, templateArgs } from "../support/helm.ts";

export const manifestsPath = join(repoRoot, "manifests/install.yaml");
export const installNamespace = "coder-metrics";

export function installManifests(): string {
  const rendered = helmOk(
    templateArgs({ release: "coder-metrics", namespace: installNamespace, includeCrds: true }),
  );
  return `# coder-metrics, installed without Helm:
#   kubectl apply --server-side -f manifests/install.yaml
# Generated from charts/coder-metrics by \`make manifests\` (helm template with the
# chart's default values); do not edit. Examples: manifests/examples/.
---
apiVersion: v1
kind: Namespace
metadata:
  name: ${installNamespace}
  labels:
    app.kubernetes.io/name: coder-metrics
    app.kubernetes.io/part-of: coder-metrics
    # The controller passes Pod Security Standards "restricted".
    pod-security.kubernetes.io/enforce: restricted
${rendered}`;
}

if (import.meta.main) writeFileSync(manifestsPath, installManifests());
