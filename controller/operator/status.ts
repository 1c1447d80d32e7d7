// Status as an API: metav1.Condition-shaped conditions, lastTransitionTime
// that moves only when status flips, and an equality that ignores the clock
// so an unchanged status is never written back.
import type { Condition, CoderMetricsStatus } from "../api/v1alpha1.ts";
import { digestOf } from "../desired/digest.ts";

export const conditionTypes = [
  "Ready",
  "CoderConfigured",
  "PIIProtected",
  "ServiceReady",
  "ServiceMonitorReady",
  "ExporterReady",
  "Discovered",
] as const;
export type ConditionType = (typeof conditionTypes)[number];

export interface ConditionInput {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/** Merges freshly computed conditions into the previous ones (keeping transition times). */
export function mergeConditions(
  previous: Condition[] | undefined,
  next: ConditionInput[],
  generation: number,
  now: Date,
): Condition[] {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    const lastTransitionTime =
      before !== undefined && before.status === c.status
        ? before.lastTransitionTime
        : now.toISOString().replace(/\.\d{3}Z$/, "Z");
    return {
      ...c,
      message: c.message.slice(0, 32768),
      observedGeneration: generation,
      lastTransitionTime,
    };
  });
}

/** Ready summarises the parts that are required; its reason is the first part that is not. */
export function readyCondition(parts: ConditionInput[], required: ConditionType[]): ConditionInput {
  const failing = parts.find((p) => required.includes(p.type) && p.status !== "True");
  if (failing === undefined) {
    return {
      type: "Ready",
      status: "True",
      reason: "Reconciled",
      message: "Coder is wired to Prometheus",
    };
  }
  return {
    type: "Ready",
    status: failing.status === "Unknown" ? "Unknown" : "False",
    reason: failing.reason,
    message: `${failing.type}: ${failing.message}`,
  };
}

function comparable(status: CoderMetricsStatus | undefined): string {
  const conditions = (status?.conditions ?? []).map(({ lastTransitionTime: _t, ...rest }) => rest);
  return digestOf({ ...status, conditions });
}

export function statusEqual(
  a: CoderMetricsStatus | undefined,
  b: CoderMetricsStatus | undefined,
): boolean {
  return comparable(a) === comparable(b);
}
