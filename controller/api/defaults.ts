// The spec with every default filled in, as the API server would store it.
// Reconcile works on this, so objects created before a default changed (or
// read from a cluster whose CRD is older) still get a complete spec.
import { Value } from "@sinclair/typebox/value";
import { CoderMetricsSpec } from "./v1alpha1.ts";

export function resolveSpec(spec: unknown): CoderMetricsSpec {
  return Value.Default(CoderMetricsSpec, Value.Clone(spec ?? {})) as CoderMetricsSpec;
}
