// Prints the CoderMetrics CRD as YAML: `make generate` writes it into the
// chart (charts/coder-metrics/crds/), and a unit test fails when it drifts.
import { stringify } from "yaml";
import { coderMetricsCrd } from "../../controller/api/crd.ts";

export function crdYaml(): string {
  return `# Generated from controller/api/v1alpha1.ts by \`make generate\`; do not edit.\n${stringify(coderMetricsCrd(), { lineWidth: 0 })}`;
}

if (import.meta.main) process.stdout.write(crdYaml());
