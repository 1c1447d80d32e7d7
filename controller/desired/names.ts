// Names, labels and annotations shared by every object coder-metrics owns.
import type { CoderMetrics } from "../api/v1alpha1.ts";
import { apiVersion, group, kind } from "../api/v1alpha1.ts";

export const fieldManager = "coder-metrics";
export const finalizer = `${group}/cleanup`;
/** On a Coder Deployment: which CoderMetrics (namespace/name) configured it. */
export const instanceAnnotation = `${group}/instance`;
/** Digest of the fields we last applied; equal digest + fields present = nothing to do. */
export const appliedAnnotation = `${group}/applied`;
export const instanceLabel = `${group}/instance`;
export const managedByLabel = "app.kubernetes.io/managed-by";
export const managedBy = "coder-metrics";

export const exporterContainerName = "coder-metrics-exporter";
export const exporterConfigVolume = "coder-metrics-exporter-config";
export const exporterConfigDir = "/etc/coder-metrics";
export const exporterConfigKey = "exporter.yaml";
export const coderPortName = "prom-http";
export const exporterPortName = "exporter-http";

export function instanceKey(cr: Pick<CoderMetrics, "metadata">): string {
  return `${cr.metadata.namespace}/${cr.metadata.name}`;
}

/** Labels on every object we own; the ServiceMonitor selects the Service by them. */
export function ownedLabels(cr: Pick<CoderMetrics, "metadata">): Record<string, string> {
  // Not app.kubernetes.io/name=coder-metrics: that names the chart's own objects.
  return {
    "app.kubernetes.io/component": "coder-metrics-target",
    "app.kubernetes.io/part-of": "coder",
    [managedByLabel]: managedBy,
    [instanceLabel]: cr.metadata.name,
  };
}

export function ownerReference(cr: Pick<CoderMetrics, "metadata">) {
  return {
    apiVersion,
    kind,
    name: cr.metadata.name,
    uid: cr.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function exporterConfigMapName(cr: Pick<CoderMetrics, "metadata">): string {
  return `${cr.metadata.name}-exporter-config`;
}
