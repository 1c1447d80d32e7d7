// The controller against a real kube-apiserver with the Prometheus Operator's
// CRDs installed: a CoderMetrics and a Coder-like Deployment end up wired to
// Prometheus, stay wired, and are restored when the CoderMetrics goes away.
import assert from "node:assert/strict";
import { before, describe, test, type TestContext } from "node:test";
import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import * as k8s from "@kubernetes/client-node";
import type { CoderMetrics } from "../../../controller/api/v1alpha1.ts";
import {
  coderLabels,
  createCoderDeployment,
  patchContainer,
} from "../../support/coder-deployment.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import {
  resyncAndSettle,
  startController,
  testExporterImage,
  writeCount,
} from "../../support/controller.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";

const clients = testClients();
const labels = coderLabels;

before(async () => {
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients);
});

function coderMetrics(namespace: string, spec: Record<string, unknown> = {}, name = "coder") {
  return {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace },
    spec,
  };
}

async function readCr(namespace: string, name = "coder"): Promise<CoderMetrics> {
  return clients.objects.read<CoderMetrics & k8s.KubernetesObject>({
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name, namespace },
  });
}

function condition(cr: CoderMetrics, type: string) {
  return cr.status?.conditions?.find((c) => c.type === type);
}

async function waitForCondition(
  namespace: string,
  type: string,
  status: string,
  reason?: string,
  name = "coder",
) {
  return eventually(
    `${type}=${status}${reason ? ` (${reason})` : ""} on CoderMetrics ${namespace}/${name}`,
    async () => {
      const cr = await readCr(namespace, name);
      const c = condition(cr, type);
      return c?.status === status &&
        (reason === undefined || c.reason === reason) &&
        cr.status?.observedGeneration === cr.metadata.generation
        ? cr
        : undefined;
    },
  );
}

async function coderd(
  namespace: string,
): Promise<{ deployment: V1Deployment; coder: V1Container; exporter: V1Container | undefined }> {
  const deployment = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
  const containers = deployment.spec?.template.spec?.containers ?? [];
  return {
    deployment,
    coder: containers.find((c) => c.name === "coder")!,
    exporter: containers.find((c) => c.name === "coder-metrics-exporter"),
  };
}

function envOf(c: V1Container): Record<string, string | undefined> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
}

async function setup(t: TestContext, spec: Record<string, unknown> = {}, env: k8s.V1EnvVar[] = []) {
  const namespace = await freshNamespace(t, clients);
  const controller = await startController(t, [namespace]);
  await createCoderDeployment(clients, namespace, { env });
  await clients.objects.create(coderMetrics(namespace, spec));
  return { namespace, controller };
}

describe("CoderMetrics reconcile", () => {
  test("a CR and a Coder Deployment → env, sidecar, Service, ServiceMonitor, status Ready", async (t) => {
    const { namespace } = await setup(t, {
      monitor: { labels: { release: "kube-prometheus-stack" } },
    });
    const cr = await waitForCondition(namespace, "Ready", "True");
    for (const type of [
      "CoderConfigured",
      "ServiceReady",
      "ExporterReady",
      "ServiceMonitorReady",
    ]) {
      assert.equal(condition(cr, type)?.status, "True", `${type}: ${condition(cr, type)?.message}`);
    }
    assert.deepEqual(cr.status?.deployments, [
      { name: "coder", coderAddress: "0.0.0.0:2112", configured: true },
    ]);
    assert.deepEqual(cr.metadata.finalizers, ["coder-metrics.io/cleanup"]);

    const { coder, exporter, deployment } = await coderd(namespace);
    assert.equal(envOf(coder).CODER_PROMETHEUS_ENABLE, "true");
    assert.equal(envOf(coder).CODER_PROMETHEUS_ADDRESS, "0.0.0.0:2112");
    assert.equal(envOf(coder).CODER_HTTP_ADDRESS, "0.0.0.0:8080", "the chart's env is untouched");
    assert.equal(exporter?.image, testExporterImage);
    assert.ok(
      deployment.spec?.template.spec?.volumes?.some(
        (v) => v.configMap?.name === "coder-exporter-config",
      ),
    );

    const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
    assert.equal(service.spec?.clusterIP, "None");
    assert.deepEqual(service.spec?.selector, { ...labels, "coder-metrics.io/instance": "coder" });
    assert.equal(
      deployment.spec?.template.metadata?.labels?.["coder-metrics.io/instance"],
      "coder",
      "configured pods are labelled",
    );
    assert.deepEqual(
      service.spec?.ports?.map((p) => [p.name, p.port]),
      [
        ["prom-http", 2112],
        ["exporter-http", 2113],
      ],
    );
    assert.equal(service.metadata?.ownerReferences?.[0]?.kind, "CoderMetrics");

    const sm = await clients.objects.read<
      k8s.KubernetesObject & {
        spec: {
          endpoints: Array<{ port: string }>;
          selector: { matchLabels: Record<string, string> };
        };
      }
    >({
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "coder-prom", namespace },
    });
    assert.equal(sm.metadata?.labels?.release, "kube-prometheus-stack");
    assert.equal(sm.spec.endpoints[0]?.port, "exporter-http");
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels))
      assert.equal(service.metadata?.labels?.[k], v);

    const cm = await clients.core.readNamespacedConfigMap({
      name: "coder-exporter-config",
      namespace,
    });
    assert.ok(cm.data?.["exporter.yaml"] !== undefined);
  });

  test("a second reconcile makes zero writes and changes no resourceVersion", async (t) => {
    const { namespace, controller } = await setup(t);
    await waitForCondition(namespace, "Ready", "True");
    await resyncAndSettle(controller); // let any trailing events settle
    const versions = async () => {
      const d = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
      const s = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
      const cr = await readCr(namespace);
      return [
        d.metadata?.resourceVersion,
        s.metadata?.resourceVersion,
        cr.metadata.resourceVersion,
        d.metadata?.generation,
      ];
    };
    const before = await versions();
    const writesBefore = await writeCount(controller);
    await resyncAndSettle(controller);
    await resyncAndSettle(controller);
    assert.equal(await writeCount(controller), writesBefore, "no apply/patch/delete/status write");
    assert.deepEqual(await versions(), before, "no object changed, so no rollout of coderd");
  });

  test("a user's edit to an owned field is healed; an unrelated helm upgrade survives", async (t) => {
    const { namespace } = await setup(t);
    await waitForCondition(namespace, "Ready", "True");

    // Someone edits our Service's port.
    await clients.core.patchNamespacedService(
      {
        name: "coder-prom",
        namespace,
        fieldManager: "kubectl-edit",
        body: [{ op: "replace", path: "/spec/ports/0/port", value: 9999 }],
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
    );
    await eventually("the Service port to be healed", async () => {
      const s = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
      const ports = s.spec?.ports?.map((p) => `${p.name}:${p.port}`).sort();
      return JSON.stringify(ports) === JSON.stringify(["exporter-http:2113", "prom-http:2112"])
        ? s
        : undefined;
    });

    // Someone edits the injected sidecar's image.
    await patchContainer(
      clients,
      namespace,
      { name: "coder-metrics-exporter", image: "busybox" },
      { fieldManager: "kubectl-edit" },
    );
    await eventually("the sidecar image to be healed", async () => {
      const { exporter } = await coderd(namespace);
      return exporter?.image === testExporterImage ? true : undefined;
    });

    // "helm upgrade" of Coder: a new image and a new env var, by the helm field manager.
    await patchContainer(clients, namespace, {
      name: "coder",
      image: "ghcr.io/coder/coder:v2.21.0",
      env: [{ name: "CODER_VERBOSE", value: "true" }],
    });
    // Give the controller its chance to (wrongly) undo it.
    await new Promise((r) => setTimeout(r, 1500));
    const { coder, exporter } = await coderd(namespace);
    assert.equal(coder.image, "ghcr.io/coder/coder:v2.21.0");
    assert.equal(envOf(coder).CODER_VERBOSE, "true");
    assert.equal(envOf(coder).CODER_PROMETHEUS_ENABLE, "true");
    assert.ok(exporter !== undefined);
  });

  test("Respect: the user's own CODER_PROMETHEUS_ADDRESS is kept and the Service follows it", async (t) => {
    const { namespace } = await setup(t, {}, [
      { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9100" },
    ]);
    const cr = await waitForCondition(namespace, "Ready", "True");
    assert.equal(cr.status?.deployments?.[0]?.coderAddress, "0.0.0.0:9100");
    const { coder, exporter } = await coderd(namespace);
    assert.equal(envOf(coder).CODER_PROMETHEUS_ADDRESS, "0.0.0.0:9100");
    assert.ok(exporter?.args?.includes("--upstream=http://127.0.0.1:9100/metrics"));
    const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
    assert.equal(service.spec?.ports?.[0]?.port, 9100);
  });

  test("deleting the CR restores the Deployment and removes what it owned", async (t) => {
    const { namespace } = await setup(t);
    await waitForCondition(namespace, "Ready", "True");
    await clients.objects.delete(coderMetrics(namespace));
    await eventually("the CR to be gone", async () => {
      try {
        await readCr(namespace);
        return undefined;
      } catch {
        return true;
      }
    });
    const { coder, exporter, deployment } = await coderd(namespace);
    assert.deepEqual(Object.keys(envOf(coder)), ["CODER_HTTP_ADDRESS"]);
    assert.equal(exporter, undefined);
    assert.equal(deployment.spec?.template.spec?.volumes, undefined);
    assert.equal(deployment.metadata?.annotations?.["coder-metrics.io/instance"], undefined);
    await assert.rejects(clients.core.readNamespacedService({ name: "coder-prom", namespace }));
    await assert.rejects(
      clients.core.readNamespacedConfigMap({ name: "coder-exporter-config", namespace }),
    );
  });

  test("Discovered says which label a kube-prometheus-stack Prometheus wants, then True once it is set", async (t) => {
    const { namespace } = await setup(t);
    const monitoring = await freshNamespace(t, clients, "cm-monitoring");
    await clients.objects.create({
      apiVersion: "monitoring.coreos.com/v1",
      kind: "Prometheus",
      metadata: { name: "kps", namespace: monitoring },
      spec: {
        serviceMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
        serviceMonitorNamespaceSelector: {},
      },
    });
    t.after(() =>
      clients.objects
        .delete({
          apiVersion: "monitoring.coreos.com/v1",
          kind: "Prometheus",
          metadata: { name: "kps", namespace: monitoring },
        })
        .catch(() => {}),
    );
    const cr = await waitForCondition(namespace, "Discovered", "False", "NotSelected");
    assert.match(
      condition(cr, "Discovered")?.message ?? "",
      new RegExp(
        `${monitoring}/kps: its serviceMonitorSelector requires release=kube-prometheus-stack`,
      ),
    );

    await clients.objects.patch(
      coderMetrics(namespace, { monitor: { labels: { release: "kube-prometheus-stack" } } }),
      undefined,
      undefined,
      "test",
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    const selected = await waitForCondition(namespace, "Discovered", "True");
    assert.match(
      condition(selected, "Discovered")?.message ?? "",
      new RegExp(`selected by ${monitoring}/kps`),
    );
  });

  test("an invalid RE2 regex is accepted by the API server but reported in status; the last good config stays", async (t) => {
    const { namespace } = await setup(t, {
      exporter: {
        config: {
          metricRelabelings: [{ sourceLabels: ["__name__"], regex: "go_.*", action: "drop" }],
        },
      },
    });
    await waitForCondition(namespace, "ExporterReady", "True");
    const good = (
      await clients.core.readNamespacedConfigMap({ name: "coder-exporter-config", namespace })
    ).data?.["exporter.yaml"];
    assert.match(good ?? "", /go_\.\*/);

    await clients.objects.patch(
      coderMetrics(namespace, {
        exporter: {
          config: {
            metricRelabelings: [{ sourceLabels: ["__name__"], regex: "(?<=x)y", action: "drop" }],
          },
        },
      }),
      undefined,
      undefined,
      "test",
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    const cr = await waitForCondition(namespace, "ExporterReady", "False", "InvalidConfig");
    assert.match(
      condition(cr, "ExporterReady")?.message ?? "",
      /spec\.exporter\.config\.metricRelabelings\[0\]\.regex/,
    );
    assert.equal(condition(cr, "Ready")?.status, "False");
    const kept = (
      await clients.core.readNamespacedConfigMap({ name: "coder-exporter-config", namespace })
    ).data?.["exporter.yaml"];
    assert.equal(kept, good);
  });
});

describe("CoderMetrics validation by the API server", () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      "hashmod without modulus",
      { exporter: { config: { metricRelabelings: [{ action: "hashmod", targetLabel: "s" }] } } },
      /modulus is required for action hashmod/,
    ],
    [
      "replace without targetLabel",
      { exporter: { config: { metricRelabelings: [{ sourceLabels: ["a"] }] } } },
      /targetLabel is required/,
    ],
    [
      "unknown action",
      { exporter: { config: { metricRelabelings: [{ action: "rename" }] } } },
      /Unsupported value: \W*rename/,
    ],
    [
      "scrapeTimeout above interval",
      { monitor: { interval: "10s", scrapeTimeout: "30s" } },
      /scrapeTimeout must not exceed interval/,
    ],
    [
      "exporter target with the exporter off",
      { exporter: { enabled: false } },
      /monitor.target Exporter needs exporter.enabled/,
    ],
    ["exporter port equal to coderd's", { exporter: { port: 2112 } }, /exporter.port must differ/],
    ["bad address", { coder: { address: "localhost" } }, /spec.coder.address/],
    [
      // Names are UTF-8 as in Prometheus 3 ("a-b", "http.route" are fine); only "" is not.
      "empty label name",
      {
        exporter: { config: { metricRelabelings: [{ sourceLabels: [""], targetLabel: "x" }] } },
      },
      /sourceLabels\[0\]/,
    ],
  ];
  for (const [name, spec, message] of cases) {
    test(`refuses ${name}`, async (t) => {
      await installCoderMetricsCrd(clients);
      const namespace = await freshNamespace(t, clients);
      await assert.rejects(
        clients.objects.create(coderMetrics(namespace, spec)),
        (err: unknown) => {
          const body = String((err as { body?: unknown }).body ?? err);
          assert.match(body, message);
          return true;
        },
      );
    });
  }
});
