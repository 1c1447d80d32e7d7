// The controller keeps working when things go wrong: the API server restarts
// under it, another writer keeps editing the Deployment, objects vanish in odd
// orders, and the controller itself is killed mid-flight. Runs on a private
// control plane with kube-controller-manager (GC and namespace deletion), so
// it can restart the API server without disturbing other test files.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { type ControlPlane, freePort, startControlPlane } from "../../cluster/control-plane.ts";
import { createCoderDeployment, patchContainer } from "../../support/coder-deployment.ts";
import { settled, startController, writeCount } from "../../support/controller.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import { eventually, freshNamespace, type TestClients, testClients } from "../../support/kube.ts";

const skip =
  process.env.USE_EXISTING_CLUSTER === "true"
    ? "restarts the API server: needs a private control plane"
    : false;
const cli = resolve(import.meta.dirname, "../../../controller/cli.ts");
let controlPlane: ControlPlane;
let clients: TestClients;

before(async () => {
  if (skip) return;
  controlPlane = await startControlPlane({ controllerManager: true });
  clients = testClients(controlPlane.kubeconfigPath);
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients, ["servicemonitors", "podmonitors", "prometheuses"]);
});
after(() => controlPlane?.stop());

const labels = { "app.kubernetes.io/name": "coder" };
type Cr = k8s.KubernetesObject & {
  status?: { conditions?: Array<{ type: string; status: string; reason: string }> };
};

function crRef(namespace: string, name = "coder") {
  return {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace },
  };
}

/** Coder-like Deployment with no replicas: no scheduler or kubelet here; the pod template is what matters. */
function createDeployment(
  namespace: string,
  name = "coder",
  podLabels: Record<string, string> = labels,
) {
  return createCoderDeployment(clients, namespace, { name, labels: podLabels, replicas: 0 });
}

async function ready(namespace: string, name = "coder"): Promise<void> {
  await eventually(
    `CoderMetrics ${namespace}/${name} Ready`,
    async () => {
      const cr = await clients.objects.read<Cr>(crRef(namespace, name));
      return cr.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
        ? true
        : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

async function exporterInjected(namespace: string, name = "coder"): Promise<boolean> {
  const d = await clients.apps.readNamespacedDeployment({ name, namespace });
  return (d.spec?.template.spec?.containers ?? []).some((c) => c.name === "coder-metrics-exporter");
}

async function gone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch {
    return true;
  }
}

/** A namespace with a running controller, a Coder Deployment and a Ready CoderMetrics. */
async function wiredCoder(t: TestContext) {
  const namespace = await freshNamespace(t, clients);
  const controller = await startController(t, [namespace], {
    kubeconfigPath: controlPlane.kubeconfigPath,
  });
  await createDeployment(namespace);
  await clients.objects.create({ ...crRef(namespace), spec: {} });
  await ready(namespace);
  return { namespace, controller };
}

describe("controller under faults", { skip }, () => {
  test("the API server is killed and restarted: the controller reconnects and converges what changed meanwhile", async (t: TestContext) => {
    const { namespace } = await wiredCoder(t);

    await controlPlane.apiserver.stop(0, "SIGKILL");
    await new Promise((r) => setTimeout(r, 2000)); // the controller's watches fail meanwhile
    await controlPlane.restartApiserver();

    // Work that arrives after the restart is picked up by the re-established watches.
    const otherLabels = { "app.kubernetes.io/name": "coder-two" };
    await createDeployment(namespace, "coder-2", otherLabels);
    await clients.objects.create({
      ...crRef(namespace, "second"),
      spec: { selector: { matchLabels: { app: "none" } }, service: { name: "second-prom" } },
    });
    await clients.objects.patch(
      {
        ...crRef(namespace, "second"),
        spec: { selector: { matchLabels: { app: null, ...otherLabels } } },
      }, // merge patch: null removes
      undefined,
      undefined,
      "test",
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    await ready(namespace, "second");
    assert.ok(await exporterInjected(namespace, "coder-2"));
    // One Service per CR, no duplicates.
    const services = await clients.core.listNamespacedService({ namespace });
    assert.deepEqual(services.items.map((s) => s.metadata?.name).sort(), [
      "coder-prom",
      "second-prom",
    ]);
  });

  test("watch history compacted while the API server is down: the informers relist (410 Gone) and catch a deletion they missed", async (t) => {
    const { namespace } = await wiredCoder(t);

    await controlPlane.apiserver.stop(0, "SIGKILL");
    await controlPlane.restartApiserver();
    // Meanwhile (for the controller, whose watches are still reconnecting): the CR is deleted
    // and etcd's history compacted, so resuming from the old resourceVersion is impossible.
    await clients.objects.delete(crRef(namespace));
    await controlPlane.compactEtcd();
    await eventually(
      "the deletion to be seen after a relist and the finalizer to complete",
      async () => ((await gone(() => clients.objects.read(crRef(namespace)))) ? true : undefined),
      { timeoutMs: 60_000 },
    );
    assert.equal(await exporterInjected(namespace), false, "the Deployment was given back");
  });

  test("another writer edits the Deployment every 300 ms: both sets of fields survive, no hot loop", async (t) => {
    const { namespace, controller } = await wiredCoder(t);
    await settled(controller);
    const writesBefore = await writeCount(controller);
    for (let i = 0; i < 20; i++) {
      await patchContainer(clients, namespace, {
        name: "coder",
        env: [{ name: "CODER_VERBOSE", value: String(i % 2 === 0) }],
      });
      await new Promise((r) => setTimeout(r, 300));
    }
    await new Promise((r) => setTimeout(r, 1000));
    const d = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
    const env = Object.fromEntries(
      (d.spec?.template.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    assert.equal(env.CODER_VERBOSE, "false");
    assert.equal(env.CODER_PROMETHEUS_ENABLE, "true");
    assert.ok(await exporterInjected(namespace));
    assert.equal(
      await writeCount(controller),
      writesBefore,
      "their edits never touch our fields, so we write nothing",
    );
  });

  test("Deployment deleted and recreated: it is configured again", async (t) => {
    const { namespace } = await wiredCoder(t);
    await clients.apps.deleteNamespacedDeployment({ name: "coder", namespace });
    await eventually("the CR to notice", async () => {
      const cr = await clients.objects.read<Cr>(crRef(namespace));
      return cr.status?.conditions?.find((c) => c.type === "CoderConfigured")?.reason ===
        "NoDeploymentMatched"
        ? true
        : undefined;
    });
    await createDeployment(namespace);
    await eventually("the new Deployment to get the sidecar", async () =>
      (await exporterInjected(namespace)) ? true : undefined,
    );
    await ready(namespace);
  });

  test("CR deleted after its Deployment is already gone: the finalizer still completes", async (t) => {
    const { namespace } = await wiredCoder(t);
    await clients.apps.deleteNamespacedDeployment({ name: "coder", namespace });
    await clients.objects.delete(crRef(namespace));
    await eventually("the CR to be gone", async () =>
      (await gone(() => clients.objects.read(crRef(namespace)))) ? true : undefined,
    );
    await eventually("the Service to be gone", async () =>
      (await gone(() => clients.core.readNamespacedService({ name: "coder-prom", namespace })))
        ? true
        : undefined,
    );
  });

  test("namespace deleted: the finalizer does not block it", async (t) => {
    const { namespace } = await wiredCoder(t);
    await clients.core.deleteNamespace({ name: namespace });
    await eventually(
      "the namespace to finish deleting",
      async () =>
        (await gone(() => clients.core.readNamespace({ name: namespace }))) ? true : undefined,
      { timeoutMs: 90_000 },
    );
  });

  test("the controller is SIGKILLed at random points while 30 CRs are created and deleted: a restart converges exactly", async (t) => {
    const namespace = await freshNamespace(t, clients);
    const names = Array.from({ length: 30 }, (_, i) => `cm-${i}`);
    for (const name of names) await createDeployment(namespace, name);
    const port = await freePort();
    let child: ChildProcess | undefined;
    const start = () => {
      child = spawn(
        process.execPath,
        [
          cli,
          "controller",
          "--leader-elect=false",
          `--watch-namespaces=${namespace}`,
          `--metrics-address=127.0.0.1:${port}`,
          "--log-level=error",
        ],
        { env: { ...process.env, KUBECONFIG: controlPlane.kubeconfigPath }, stdio: "ignore" },
      );
    };
    t.after(() => child?.kill("SIGKILL"));
    start();
    // Each CR selects its own Deployment by name label... Deployments share labels, so select by instance label.
    for (const [i, name] of names.entries()) {
      await clients.apps.patchNamespacedDeployment(
        { name, namespace, body: { metadata: { labels: { instance: name } } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      await clients.objects.create({
        ...crRef(namespace, name),
        spec: { selector: { matchLabels: { instance: name } }, service: { name: `${name}-prom` } },
      });
      if (i % 7 === 3) {
        child?.kill("SIGKILL");
        start();
      }
    }
    const deleted = names.filter((_, i) => i % 3 === 0);
    for (const [i, name] of deleted.entries()) {
      await clients.objects.delete(crRef(namespace, name));
      if (i % 4 === 1) {
        child?.kill("SIGKILL");
        start();
      }
    }
    const kept = names.filter((n) => !deleted.includes(n));
    await eventually(
      "every kept CR Ready and every deleted one released",
      async () => {
        for (const name of kept) {
          const cr = await clients.objects.read<Cr>(crRef(namespace, name));
          if (!cr.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
            return undefined;
          if (!(await exporterInjected(namespace, name))) return undefined;
        }
        for (const name of deleted) {
          if (!(await gone(() => clients.objects.read(crRef(namespace, name))))) return undefined;
          if (await exporterInjected(namespace, name)) return undefined;
        }
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    const services = (await clients.core.listNamespacedService({ namespace })).items
      .map((s) => s.metadata?.name)
      .sort();
    assert.deepEqual(services, kept.map((n) => `${n}-prom`).sort(), "no orphaned Services");
    const configMaps = (
      await clients.core.listNamespacedConfigMap({
        namespace,
        labelSelector: "app.kubernetes.io/managed-by=coder-metrics",
      })
    ).items;
    assert.equal(configMaps.length, kept.length, "no orphaned exporter ConfigMaps");
    for (const name of deleted) {
      const d = await clients.apps.readNamespacedDeployment({ name, namespace });
      assert.equal(
        d.metadata?.annotations?.["coder-metrics.io/instance"],
        undefined,
        `${name} released`,
      );
    }
  });
});
