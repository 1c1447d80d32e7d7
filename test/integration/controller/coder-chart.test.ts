// The controller against a Deployment exactly as Coder's Helm chart renders it
// (test/support/coder-deployment.ts): the chart always sets
// CODER_PROMETHEUS_ADDRESS=0.0.0.0:2112, so under existingSettings: Respect —
// the default, and the most common real path — that address is the one used,
// spec.coder.address is not, and status says so; the Service and the monitor
// must then point at 2112. With CODER_PROMETHEUS_ENABLE=true in coder.env the
// chart adds the prometheus-http container port, which a Coderd-target
// monitor scrapes through the Service.
import assert from "node:assert/strict";
import { before, describe, test, type TestContext } from "node:test";
import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import type * as k8s from "@kubernetes/client-node";
import type { CoderMetrics } from "../../../controller/api/v1alpha1.ts";
import { chartPrometheusAddress, createCoderDeployment } from "../../support/coder-deployment.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import { startController } from "../../support/controller.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";

const clients = testClients();

before(async () => {
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients);
});

type ServiceMonitor = k8s.KubernetesObject & {
  spec: { endpoints: Array<{ port: string }>; selector: { matchLabels: Record<string, string> } };
};

async function setup(t: TestContext, spec: Record<string, unknown>, env: k8s.V1EnvVar[] = []) {
  const namespace = await freshNamespace(t, clients, "coder-chart");
  await startController(t, [namespace]);
  await createCoderDeployment(clients, namespace, { env });
  await clients.objects.create({
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
    spec,
  });
  const cr = await eventually(`CoderMetrics ${namespace}/coder Ready`, async () => {
    const cr = await clients.objects.read<CoderMetrics & k8s.KubernetesObject>({
      apiVersion: "coder-metrics.io/v1alpha1",
      kind: "CoderMetrics",
      metadata: { name: "coder", namespace },
    });
    const ready = cr.status?.conditions?.find((c) => c.type === "Ready");
    return ready?.status === "True" && cr.status?.observedGeneration === cr.metadata.generation
      ? cr
      : undefined;
  });
  const deployment = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
  const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
  const monitor = await clients.objects.read<ServiceMonitor>({
    apiVersion: "monitoring.coreos.com/v1",
    kind: "ServiceMonitor",
    metadata: { name: "coder-prom", namespace },
  });
  return { namespace, cr, deployment, service, monitor };
}

function container(d: V1Deployment, name: string): V1Container | undefined {
  return d.spec?.template.spec?.containers.find((c) => c.name === name);
}

function env(c: V1Container | undefined): Record<string, string | undefined> {
  return Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
}

/** Env names the controller's field manager owns on the coder container. */
function ownedByController(d: V1Deployment): string[] {
  const entry = d.metadata?.managedFields?.find((f) => f.manager === "coder-metrics");
  const text = JSON.stringify(entry?.fieldsV1 ?? {});
  return [...text.matchAll(/k:\{\\"name\\":\\"(CODER_[A-Z_]+)\\"\}/g)].map((m) => m[1]!);
}

describe("Coder's Helm chart Deployment", () => {
  test("Respect keeps the chart's address; status says which address and why; Service and ServiceMonitor target it", async (t) => {
    const { cr, deployment, service, monitor } = await setup(t, {
      coder: { address: "0.0.0.0:9200" },
      monitor: { labels: { release: "kube-prometheus-stack" } },
    });
    assert.deepEqual(cr.status?.deployments, [
      {
        name: "coder",
        coderAddress: chartPrometheusAddress,
        configured: true,
        message:
          "coderd serves metrics on 0.0.0.0:2112, the CODER_PROMETHEUS_ADDRESS already set on the container (existingSettings: Respect); spec.coder.address 0.0.0.0:9200 is not used (existingSettings: Override applies it)",
      },
    ]);
    const coder = container(deployment, "coder");
    assert.equal(env(coder).CODER_PROMETHEUS_ADDRESS, chartPrometheusAddress, "the chart's value");
    assert.equal(env(coder).CODER_PROMETHEUS_ENABLE, "true", "enabled by the controller");
    assert.deepEqual(ownedByController(deployment).sort(), ["CODER_PROMETHEUS_ENABLE"]);
    // The chart's probes, ports and securityContext are untouched.
    assert.equal(coder?.readinessProbe?.httpGet?.path, "/healthz");
    assert.equal(coder?.readinessProbe?.httpGet?.port, "http");
    assert.equal(coder?.securityContext?.runAsUser, 1000);
    assert.deepEqual(
      coder?.ports?.map((p) => p.name),
      ["http"],
      "no prometheus-http port: coder.env does not enable Prometheus",
    );
    // The exporter reads coderd on the chart's port; the Service exposes it and the exporter.
    assert.ok(
      container(deployment, "coder-metrics-exporter")?.args?.includes(
        "--upstream=http://127.0.0.1:2112/metrics",
      ),
    );
    assert.deepEqual(
      service.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
      [
        ["prom-http", 2112, 2112],
        ["exporter-http", 2113, 2113],
      ],
    );
    assert.deepEqual(
      monitor.spec.endpoints.map((e) => e.port),
      ["exporter-http"],
    );
    for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels))
      assert.equal(
        service.metadata?.labels?.[k],
        v,
        `the ServiceMonitor selects the Service (${k})`,
      );
  });

  test("coder.env CODER_PROMETHEUS_ENABLE=true: the chart's prometheus-http port, kept settings, a Coderd monitor on 2112", async (t) => {
    const { cr, deployment, service, monitor } = await setup(
      t,
      { monitor: { target: "Coderd" }, exporter: { enabled: false } },
      [{ name: "CODER_PROMETHEUS_ENABLE", value: "true" }],
    );
    assert.equal(cr.status?.deployments?.[0]?.coderAddress, chartPrometheusAddress);
    assert.equal(
      cr.status?.deployments?.[0]?.message,
      "coderd serves metrics on 0.0.0.0:2112, the CODER_PROMETHEUS_ADDRESS already set on the container (existingSettings: Respect); kept the container's own CODER_PROMETHEUS_ENABLE",
    );
    const coder = container(deployment, "coder");
    assert.deepEqual(
      coder?.ports?.map((p) => [p.name, p.containerPort]),
      [
        ["http", 8080],
        ["prometheus-http", 2112],
      ],
    );
    assert.deepEqual(ownedByController(deployment), [], "nothing of the chart's env is taken over");
    assert.equal(container(deployment, "coder-metrics-exporter"), undefined);
    const promPort = service.spec?.ports?.find((p) => p.name === "prom-http");
    assert.equal(promPort?.targetPort, 2112, "the chart's prometheus-http container port");
    assert.deepEqual(
      monitor.spec.endpoints.map((e) => e.port),
      ["prom-http"],
    );
  });

  test("Override replaces the chart's address with spec.coder.address, and the Service follows", async (t) => {
    const { cr, deployment, service } = await setup(t, {
      coder: { address: "0.0.0.0:9200", existingSettings: "Override" },
    });
    assert.deepEqual(cr.status?.deployments, [
      { name: "coder", coderAddress: "0.0.0.0:9200", configured: true },
    ]);
    assert.equal(env(container(deployment, "coder")).CODER_PROMETHEUS_ADDRESS, "0.0.0.0:9200");
    assert.ok(
      container(deployment, "coder-metrics-exporter")?.args?.includes(
        "--upstream=http://127.0.0.1:9200/metrics",
      ),
    );
    assert.equal(service.spec?.ports?.find((p) => p.name === "prom-http")?.port, 9200);
  });
});
