// The controller's line to the API server, through a TCP proxy that can cut
// the network: one TLS connection serves request after request, every request
// has a deadline, and a watch whose connection went silent is dropped and
// started again.
import assert from "node:assert/strict";
import { before, test, type TestContext } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { Kube, KubeError } from "../../../controller/operator/kube.ts";
import { KubeTransport } from "../../../controller/operator/kube-config.ts";
import { kubeFetch } from "../../../controller/operator/kube-fetch.ts";
import { createControllerMetrics } from "../../../controller/operator/metrics.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";
import { samples, startController } from "../../support/controller.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";
import { kubeconfigThrough, startTcpProxy } from "../../support/tcp-proxy.ts";

const clients = testClients();

before(async () => {
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients);
});

async function proxied(t: TestContext) {
  const server = new URL(clients.config.getCurrentCluster()?.server ?? "");
  const proxy = await startTcpProxy({ host: server.hostname, port: Number(server.port) });
  t.after(() => proxy.close());
  return { proxy, config: kubeconfigThrough(clients.config, proxy) };
}

function kubeThrough(config: k8s.KubeConfig, timeoutMs: number): Kube {
  return new Kube(new KubeTransport(config, { timeoutMs }), createControllerMetrics());
}

test("request after request, through every client the controller uses, on one TLS connection", async (t) => {
  const namespace = await freshNamespace(t, clients);
  const { proxy, config } = await proxied(t);
  const kube = kubeThrough(config, 10_000);
  for (let i = 0; i < 10; i++) {
    await kube.namespaceLabels(namespace); // a read
    await kube.get({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "none", namespace } }); // a 404
    await kube.listRaw("ConfigMap", `/api/v1/namespaces/${namespace}/configmaps`, undefined); // a paged list
  }
  assert.equal(proxy.accepted, 1, "30 requests, 1 connection");

  // The doctor and the tests call kubeFetch with a bare KubeConfig: the same holds.
  const before = proxy.accepted;
  for (let i = 0; i < 5; i++) await kubeFetch(config, "GET", `/api/v1/namespaces/${namespace}`);
  assert.equal(proxy.accepted - before, 1);
});

test("a request the API server never answers fails at its deadline", async (t) => {
  const { proxy, config } = await proxied(t);
  const kube = kubeThrough(config, 1000);
  await kube.namespaceLabels("default");
  proxy.blackHole();
  const timedOut = (err: unknown) =>
    err instanceof KubeError && err.status === 0 && /no answer within 1000 ms/.test(err.message);
  await assert.rejects(kube.namespaceLabels("default"), timedOut);
  await assert.rejects(
    kube.listRaw("ConfigMap", "/api/v1/namespaces/default/configmaps", undefined),
    timedOut,
  );
  await assert.rejects(kube.serves("apps/v1", "deployments"), timedOut);
  proxy.heal();
  assert.deepEqual(await kube.namespaceLabels("default"), {
    "kubernetes.io/metadata.name": "default",
  });
});

test("watches on connections that went silent are dropped and started again", async (t) => {
  const namespace = await freshNamespace(t, clients);
  const { proxy, config } = await proxied(t);
  const controller = await startController(t, [namespace], {
    kubeconfig: config,
    watchTimeoutMs: 2000,
    requestTimeoutMs: 3000,
  });
  await createCoderDeployment(clients, namespace);
  const ref = {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
  };
  await clients.objects.create({ ...ref, spec: {} });
  const readMonitor = () =>
    clients.objects.read<k8s.KubernetesObject>({
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "coder-prom", namespace },
    });
  await eventually("the ServiceMonitor", readMonitor);
  const watches = async () =>
    (await samples(controller, "coder_metrics_controller_api_requests_total"))
      .filter((s) => s.labels.verb === "watch")
      .reduce((sum, s) => sum + s.value, 0);
  const watchesBefore = await watches();

  // Every connection open now goes silent, the watches' among them: no event, no bookmark,
  // not even the server's end of the watch gets through. New connections work.
  proxy.blackHoleExisting();
  await clients.objects.patch(
    { ...ref, spec: { monitor: { labels: { team: "observability" } } } },
    undefined,
    undefined,
    "test",
    undefined,
    k8s.PatchStrategy.MergePatch,
  );
  await eventually(
    "the change to reach the ServiceMonitor over new watches",
    async () =>
      (await readMonitor()).metadata?.labels?.team === "observability" ? true : undefined,
    { timeoutMs: 60_000 },
  );
  // The change may also come back in the answer to one of the controller's own writes (its
  // status), so the watches need not be back yet when it lands: wait for them.
  await eventually("the watches to be started again", async () =>
    (await watches()) > watchesBefore ? true : undefined,
  );
});
