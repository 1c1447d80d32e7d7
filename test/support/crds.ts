// Installs CRDs into the test cluster with server-side apply (idempotent, so
// test files running side by side may all call it) and waits until served.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { parse } from "yaml";
import { coderMetricsCrd } from "../../controller/api/crd.ts";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { eventually, type TestClients } from "./kube.ts";

const repoRoot = resolve(import.meta.dirname, "../..");

async function applyCrd(clients: TestClients, crd: k8s.V1CustomResourceDefinition): Promise<void> {
  const name = crd.metadata?.name ?? "";
  // Raw request: the generated client's serializer drops x-kubernetes-* schema keys.
  const response = await kubeFetch(
    clients.config,
    "PATCH",
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=coder-metrics-tests&force=true`,
    { body: crd, contentType: "application/apply-patch+yaml" },
  );
  if (response.status >= 300)
    throw new Error(
      `applying CRD ${name}: HTTP ${response.status}: ${JSON.stringify(response.body)}`,
    );
  await eventually(`CRD ${name} to be established`, async () => {
    const live = await clients.apiextensions.readCustomResourceDefinition({ name });
    return live.status?.conditions?.find((c) => c.type === "Established" && c.status === "True");
  });
}

export function installCoderMetricsCrd(clients: TestClients): Promise<void> {
  return applyCrd(clients, coderMetricsCrd());
}

let operatorDir: string | undefined;

/** The real monitoring.coreos.com CRDs from the pinned Prometheus Operator module. */
export function monitoringCrdPath(plural: string): string {
  operatorDir ??= execFileSync(
    join(repoRoot, "test/tools/go-module-dir.sh"),
    ["prometheus-operator", "github.com/prometheus-operator/prometheus-operator"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  ).trim();
  return join(
    operatorDir,
    "example/prometheus-operator-crd-full",
    `monitoring.coreos.com_${plural}.yaml`,
  );
}

export async function installMonitoringCrds(
  clients: TestClients,
  plurals: string[] = ["servicemonitors", "podmonitors", "prometheuses"],
): Promise<void> {
  for (const plural of plurals) {
    const crd = parse(
      readFileSync(monitoringCrdPath(plural), "utf8"),
    ) as k8s.V1CustomResourceDefinition;
    await applyCrd(clients, crd);
  }
}
