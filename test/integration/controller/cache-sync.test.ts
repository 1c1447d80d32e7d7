// Nothing is reconciled over caches that never filled. The controller runs as
// a ServiceAccount whose RBAC does not (yet) allow listing Deployments, while
// a CoderMetrics that configured a Deployment waits on its finalizer: the
// controller is not ready and drops no finalizer (finalizing over an empty
// Deployment cache would leave the Deployment configured for good); with a
// short --cache-sync-timeout it exits non-zero; once the list is allowed it
// syncs, releases the Deployment and lets the CoderMetrics go.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { before, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { freePort } from "../../cluster/control-plane.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";
import { startController } from "../../support/controller.ts";
import { installCoderMetricsCrd } from "../../support/crds.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";

const clients = testClients();
const cli = resolve(import.meta.dirname, "../../../controller/cli.ts");

before(() => installCoderMetricsCrd(clients));

/** Everything the controller needs in the namespace, except (unless asked) listing Deployments. */
function rules(listDeployments: boolean): k8s.V1PolicyRule[] {
  return [
    {
      apiGroups: ["coder-metrics.io"],
      resources: ["codermetrics", "codermetrics/status"],
      verbs: ["*"],
    },
    { apiGroups: [""], resources: ["services", "configmaps"], verbs: ["*"] },
    // As the chart grants: other suites of the run may have installed the Operator's CRDs,
    // and then the finalizer deletes the ServiceMonitor too.
    {
      apiGroups: ["monitoring.coreos.com"],
      resources: ["servicemonitors", "podmonitors", "prometheuses", "prometheusagents"],
      verbs: ["*"],
    },
    { apiGroups: ["", "events.k8s.io"], resources: ["events"], verbs: ["create", "patch"] },
    {
      apiGroups: ["apps"],
      resources: ["deployments"],
      verbs: ["get", "patch", "update", ...(listDeployments ? ["list", "watch"] : [])],
    },
  ];
}

/** A kubeconfig for a ServiceAccount bound to a Role with `rules(false)`. */
async function restrictedKubeconfig(namespace: string): Promise<string> {
  const rbac = clients.config.makeApiClient(k8s.RbacAuthorizationV1Api);
  await clients.core.createNamespacedServiceAccount({
    namespace,
    body: { metadata: { name: "controller" } },
  });
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: "controller" }, rules: rules(false) },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: "controller" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "controller" },
      subjects: [{ kind: "ServiceAccount", name: "controller", namespace }],
    },
  });
  const token = await clients.core.createNamespacedServiceAccountToken({
    name: "controller",
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = clients.config.getCurrentCluster();
  if (cluster === null) throw new Error("no cluster");
  const config = new k8s.KubeConfig();
  config.loadFromOptions({
    clusters: [cluster],
    users: [{ name: "controller", token: token.status?.token }],
    contexts: [{ name: "controller", cluster: cluster.name, user: "controller" }],
    currentContext: "controller",
  });
  const path = join(process.env.TEST_CLUSTER_DIR ?? "/tmp", `kubeconfig-${namespace}`);
  writeFileSync(path, config.exportConfig(), { mode: 0o600 });
  return path;
}

function startCli(kubeconfig: string, namespace: string, port: number, extra: string[] = []) {
  return spawn(
    process.execPath,
    [
      cli,
      "controller",
      `--kubeconfig=${kubeconfig}`,
      "--leader-elect=false",
      `--watch-namespaces=${namespace}`,
      `--metrics-address=127.0.0.1:${port}`,
      "--log-level=error",
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

async function metric(port: number, series: RegExp): Promise<number> {
  const body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  return body
    .split("\n")
    .filter((line) => series.test(line))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

test("lists refused: not ready, no finalizer dropped, exits after --cache-sync-timeout; allowed: syncs and finalizes", async (t) => {
  const namespace = await freshNamespace(t, clients);
  const ref = {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
  };
  type Cr = k8s.KubernetesObject & {
    status?: { conditions?: Array<{ type: string; status: string }> };
  };
  const exporterInjected = async () =>
    (
      await clients.apps.readNamespacedDeployment({ name: "coder", namespace })
    ).spec?.template.spec?.containers.some((c) => c.name === "coder-metrics-exporter") ?? false;

  // A Coder wired by a controller that then goes away; its CoderMetrics is deleted meanwhile.
  const first = await startController(t, [namespace]);
  await createCoderDeployment(clients, namespace);
  await clients.objects.create({ ...ref, spec: {} });
  await eventually("Ready", async () => {
    const cr = await clients.objects.read<Cr>(ref);
    return cr.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      ? true
      : undefined;
  });
  await first.stop();
  await clients.objects.delete(ref);
  const waiting = await clients.objects.read(ref);
  assert.ok(waiting.metadata?.deletionTimestamp, "held by the finalizer");

  const kubeconfig = await restrictedKubeconfig(namespace);

  // The caches cannot sync within a short timeout: the process exits non-zero.
  const quick = startCli(kubeconfig, namespace, await freePort(), ["--cache-sync-timeout=2s"]);
  t.after(() => quick.kill("SIGKILL"));
  assert.equal(await exited(quick), 1);

  // With the default timeout it keeps trying: not ready, and it touches nothing.
  const port = await freePort();
  const controller = startCli(kubeconfig, namespace, port);
  t.after(() => controller.kill("SIGKILL"));
  await eventually("the Deployment list to be refused twice", async () =>
    (await metric(
      port,
      /^coder_metrics_controller_api_requests_total\{.*verb="list".*resource="Deployment".*code="403"/,
    ).catch(() => 0)) >= 2
      ? true
      : undefined,
  );
  assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 503);
  assert.deepEqual((await clients.objects.read(ref)).metadata?.finalizers, [
    "coder-metrics.io/cleanup",
  ]);
  assert.equal(await exporterInjected(), true, "the Deployment is still configured");
  assert.equal(
    await metric(port, /^coder_metrics_controller_reconcile_total/),
    0,
    "nothing reconciled",
  );

  // Allowed now: it syncs, gives the Deployment back and lets the CoderMetrics go.
  await clients.config.makeApiClient(k8s.RbacAuthorizationV1Api).replaceNamespacedRole({
    name: "controller",
    namespace,
    body: { metadata: { name: "controller" }, rules: rules(true) },
  });
  await eventually(
    "ready",
    async () =>
      (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined,
    { timeoutMs: 60_000 },
  );
  // As long as "ready" may take: both wait on the same relist after the Role change.
  await eventually(
    "the CoderMetrics to be finalized",
    async () => {
      try {
        await clients.objects.read(ref);
        return undefined;
      } catch {
        return true;
      }
    },
    { timeoutMs: 60_000 },
  );
  assert.equal(await exporterInjected(), false, "the Deployment was given back");
});
