// metav1.LabelSelector semantics: matchLabels AND every matchExpression.
// An empty selector matches everything; callers decide what a *missing*
// selector means (the Prometheus Operator reads it as "nothing").
export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[] | undefined;
}

export interface LabelSelector {
  matchLabels?: Record<string, string> | undefined;
  matchExpressions?: LabelSelectorRequirement[] | undefined;
}

export function matchesSelector(
  selector: LabelSelector,
  labels: Record<string, string> | undefined,
): boolean {
  return unmetRequirements(selector, labels).length === 0;
}

/** The requirements `labels` fail, spelled as a user would write them (for status messages). */
export function unmetRequirements(
  selector: LabelSelector,
  labels: Record<string, string> | undefined,
): string[] {
  const have = labels ?? {};
  const unmet: string[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) unmet.push(`${key}=${value}`);
  }
  for (const req of selector.matchExpressions ?? []) {
    const present = Object.hasOwn(have, req.key);
    const values = req.values ?? [];
    const ok =
      req.operator === "In"
        ? present && values.includes(have[req.key] ?? "")
        : req.operator === "NotIn"
          ? !present || !values.includes(have[req.key] ?? "")
          : req.operator === "Exists"
            ? present
            : req.operator === "DoesNotExist"
              ? !present
              : false;
    if (!ok) {
      const list = values.length > 0 ? ` (${values.join(",")})` : "";
      unmet.push(`${req.key} ${req.operator}${list}`);
    }
  }
  return unmet;
}

/** The label selector as a query string for list/watch calls (matchLabels only). */
export function selectorQuery(matchLabels: Record<string, string>): string {
  return Object.entries(matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
