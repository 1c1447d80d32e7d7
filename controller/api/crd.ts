// The CustomResourceDefinition for CoderMetrics, built from the API schemas.
import type { V1CustomResourceDefinition } from "@kubernetes/client-node";
import { toOpenApi } from "./schema.ts";
import {
  CoderMetricsSpec,
  CoderMetricsStatus,
  group,
  kind,
  plural,
  shortNames,
  singular,
  version,
} from "./v1alpha1.ts";

export function coderMetricsCrd(): V1CustomResourceDefinition {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${plural}.${group}`,
      labels: { "app.kubernetes.io/name": "coder-metrics", "app.kubernetes.io/component": "crd" },
    },
    spec: {
      group,
      names: { kind, listKind: `${kind}List`, plural, singular, shortNames, categories: ["coder"] },
      scope: "Namespaced",
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            {
              name: "Ready",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Ready")].status',
            },
            {
              name: "Discovered",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Discovered")].status',
            },
            {
              name: "Reason",
              type: "string",
              jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
              priority: 1,
            },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "CoderMetrics makes the Coder Deployments it selects observable by Prometheus: it sets coderd's Prometheus settings, injects the coder-metrics exporter, and owns the headless Service and the ServiceMonitor.",
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                // The name becomes a label value on owned objects and coderd's pods: at most 63 characters.
                metadata: {
                  type: "object",
                  properties: { name: { type: "string", maxLength: 63 } },
                },
                spec: toOpenApi(CoderMetricsSpec),
                status: toOpenApi(CoderMetricsStatus),
              },
            },
          },
        },
      ],
    },
  };
}
