// A cluster without the Prometheus Operator: everything but the monitor is
// wired, status says why there is no ServiceMonitor, and installing the
// operator's CRDs later makes the ServiceMonitor appear without a restart.
// Needs a cluster of its own (the shared one has the monitoring CRDs).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type * as k8s from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "../../cluster/control-plane.ts";
import { startController } from "../../support/controller.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import { eventually, freshNamespace, type TestClients, testClients } from "../../support/kube.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";

const skip =
  process.env.USE_EXISTING_CLUSTER === "true"
    ? "needs a private control plane without the Prometheus Operator CRDs"
    : false;
let controlPlane: ControlPlane;
let clients: TestClients;

before(async () => {
  if (skip) return;
  controlPlane = await startControlPlane();
  clients = testClients(controlPlane.kubeconfigPath);
  await installCoderMetricsCrd(clients);
});
after(() => controlPlane?.stop());

test("no monitoring.coreos.com CRDs: Ready without a ServiceMonitor, then one appears once they are installed", {
  skip,
}, async (t) => {
  const namespace = await freshNamespace(t, clients);
  await startController(t, [namespace], {
    kubeconfigPath: controlPlane.kubeconfigPath,
    discoveryTtlMs: 500,
  });
  const labels = { "app.kubernetes.io/name": "coder" };
  await createCoderDeployment(clients, namespace, { labels });
  const ref = {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
  };
  await clients.objects.create({ ...ref, spec: {} });
  type Cr = k8s.KubernetesObject & {
    status?: {
      conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
    };
  };
  const conditions = async () => (await clients.objects.read<Cr>(ref)).status?.conditions ?? [];

  const ready = await eventually("Ready=True", async () => {
    const c = await conditions();
    return c.find((x) => x.type === "Ready")?.status === "True" ? c : undefined;
  });
  const sm = ready.find((c) => c.type === "ServiceMonitorReady");
  assert.equal(sm?.status, "False");
  assert.equal(sm?.reason, "MonitoringCRDNotInstalled");
  assert.match(sm?.message ?? "", /Prometheus Operator not installed/);
  assert.equal(ready.find((c) => c.type === "Discovered")?.status, "Unknown");
  await clients.core.readNamespacedService({ name: "coder-prom", namespace });

  await installMonitoringCrds(clients, ["servicemonitors"]);
  await eventually("the ServiceMonitor once the CRD is served", () =>
    clients.objects.read({
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "coder-prom", namespace },
    }),
  );
  const after = await eventually("ServiceMonitorReady=True", async () => {
    const c = await conditions();
    return c.find((x) => x.type === "ServiceMonitorReady")?.status === "True" ? c : undefined;
  });
  assert.equal(after.find((c) => c.type === "Ready")?.status, "True");
});
