// Which env vars of a container does a field manager own? Read from the
// object's managedFields (fieldsV1), so "the user's value" and "our value"
// can be told apart without any annotation bookkeeping.
import type { V1Deployment } from "@kubernetes/client-node";

type FieldSet = Record<string, unknown>;

function child(set: FieldSet | undefined, key: string): FieldSet | undefined {
  const next = set?.[key];
  return next !== null && typeof next === "object" ? (next as FieldSet) : undefined;
}

export function ownedEnvNames(
  deployment: V1Deployment,
  container: string,
  manager: string,
): Set<string> {
  const names = new Set<string>();
  const containerKey = `k:${JSON.stringify({ name: container })}`;
  for (const entry of deployment.metadata?.managedFields ?? []) {
    if (entry.manager !== manager || entry.operation !== "Apply" || entry.subresource) continue;
    const env = child(
      child(
        child(
          child(child(child(entry.fieldsV1 as FieldSet, "f:spec"), "f:template"), "f:spec"),
          "f:containers",
        ),
        containerKey,
      ),
      "f:env",
    );
    for (const key of Object.keys(env ?? {})) {
      if (!key.startsWith("k:")) continue;
      try {
        const { name } = JSON.parse(key.slice(2)) as { name?: string };
        if (name) names.add(name);
      } catch {
        // not an env key
      }
    }
  }
  return names;
}
