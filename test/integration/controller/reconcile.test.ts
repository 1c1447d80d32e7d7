// The controller against a real kube-apiserver with the Prometheus Operator's
// CRDs installed: a CoderMetrics and a Coder-like Deployment end up wired to
// Prometheus, stay wired, and are restored when the CoderMetrics goes away.
import assert from "node:assert/strict";
import { before, describe, test, type TestContext } from "node:test";
import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import * as k8s from "@kubernetes/client-node";
import type { CoderMetrics } from "../../../controller/api/v1alpha1.ts";
import {
  coderDeployment,
  coderLabels,
  createCoderDeployment,
  patchContainer,
} from "../../support/coder-deployment.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import {
  resyncAndSettle,
  samples,
  settled,
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
      {
        name: "coder",
        coderAddress: "0.0.0.0:2112",
        configured: true,
        // Coder's chart sets CODER_PROMETHEUS_ADDRESS itself; Respect keeps it.
        message:
          "coderd serves metrics on 0.0.0.0:2112, the CODER_PROMETHEUS_ADDRESS already set on the container (existingSettings: Respect)",
      },
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

  test("an owned object whose instance label a user rewrote still maps back (by ownerReference) and is healed", async (t) => {
    const { namespace } = await setup(t);
    await waitForCondition(namespace, "Ready", "True");
    await clients.core.patchNamespacedService(
      {
        name: "coder-prom",
        namespace,
        fieldManager: "kubectl-edit",
        body: { metadata: { labels: { "coder-metrics.io/instance": "someone-else" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    // The resync is 10 minutes away: only the Service's own event can bring this back.
    await eventually("the label to be healed", async () => {
      const s = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
      return s.metadata?.labels?.["coder-metrics.io/instance"] === "coder" ? true : undefined;
    });
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

  test("pii: coderd listens on loopback, the Service carries only the exporter's port, the sidecar has no token", async (t) => {
    const { namespace } = await setup(t, {
      monitor: { labels: { release: "kube-prometheus-stack" } },
      prometheusAnnotations: { service: true, pods: true },
      // Coder's chart always sets CODER_PROMETHEUS_ADDRESS=0.0.0.0:2112: with pii it must be overridden.
      coder: { existingSettings: "Override" },
      exporter: { config: { pii: { hashLabels: ["username"], dropLabels: ["email"] } } },
    });
    const cr = await waitForCondition(namespace, "Ready", "True");
    assert.equal(condition(cr, "PIIProtected")?.status, "True");
    assert.equal(condition(cr, "PIIProtected")?.reason, "LoopbackOnly");
    assert.deepEqual(cr.status?.deployments, [
      { name: "coder", coderAddress: "127.0.0.1:2112", configured: true },
    ]);

    const { coder, exporter, deployment } = await coderd(namespace);
    assert.equal(envOf(coder).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:2112");
    assert.ok(exporter?.args?.includes("--upstream=http://127.0.0.1:2112/metrics"));
    assert.equal(
      deployment.spec?.template.metadata?.annotations?.["prometheus.io/port"],
      "2113",
      "pod annotations name the exporter",
    );
    // The token path is shadowed in the sidecar only: coderd keeps its token.
    const tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount";
    const shadow = exporter?.volumeMounts?.find((m) => m.mountPath === tokenPath);
    assert.equal(shadow?.readOnly, true);
    const volume = deployment.spec?.template.spec?.volumes?.find((v) => v.name === shadow?.name);
    assert.deepEqual({ ...volume?.emptyDir }, { medium: "Memory", sizeLimit: "1Ki" });
    assert.equal(coder.volumeMounts?.some((m) => m.mountPath === tokenPath) ?? false, false);

    const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
    assert.deepEqual(
      service.spec?.ports?.map((p) => [p.name, p.port]),
      [["exporter-http", 2113]],
      "no coderd port",
    );
    assert.equal(service.metadata?.annotations?.["prometheus.io/port"], "2113");
    assert.match(condition(cr, "ServiceReady")?.message ?? "", /exposes exporter-http:2113$/);
  });

  test("the ServiceAccount admission plugin mounts the token into coderd, not into the sidecar", {
    skip:
      process.env.TEST_CONTROLLER_MANAGER !== "true" &&
      process.env.USE_EXISTING_CLUSTER !== "true" &&
      "the plugin runs only with kube-controller-manager (TEST_CONTROLLER_MANAGER=true), which creates the default ServiceAccount it needs",
  }, async (t) => {
    const { namespace } = await setup(t);
    await waitForCondition(namespace, "CoderConfigured", "True");
    const { deployment } = await coderd(namespace);
    await eventually("the default ServiceAccount", () =>
      clients.core.readNamespacedServiceAccount({ name: "default", namespace }),
    );
    // A dry run goes through admission, as the ReplicaSet controller's Pod would.
    const pod = await clients.core.createNamespacedPod({
      namespace,
      dryRun: "All",
      body: {
        metadata: { name: "coder-dry-run", labels: deployment.spec?.template.metadata?.labels },
        spec: deployment.spec?.template.spec ?? { containers: [] },
      },
    });
    const mounts = (name: string) =>
      pod.spec?.containers.find((c) => c.name === name)?.volumeMounts ?? [];
    const tokenPath = "/var/run/secrets/kubernetes.io/serviceaccount";
    const coderToken = mounts("coder").find((m) => m.mountPath === tokenPath);
    assert.match(coderToken?.name ?? "", /^kube-api-access-/, "coderd gets its token");
    assert.deepEqual(
      mounts("coder-metrics-exporter")
        .filter((m) => m.mountPath === tokenPath)
        .map((m) => m.name),
      ["coder-metrics-no-token"],
      "the sidecar's token path stays the empty volume",
    );
  });

  test("pii on a CR that already exposed coderd: the coderd port leaves the Service, the address goes to loopback", async (t) => {
    const { namespace } = await setup(t);
    await waitForCondition(namespace, "Ready", "True");
    await clients.objects.patch(
      coderMetrics(namespace, {
        coder: { existingSettings: "Override" },
        exporter: { config: { pii: { hashLabels: ["username"] } } },
      }),
      undefined,
      undefined,
      "test",
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    await waitForCondition(namespace, "PIIProtected", "True", "LoopbackOnly");
    await eventually("the Service to lose prom-http", async () => {
      const s = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
      return JSON.stringify(s.spec?.ports?.map((p) => p.name)) === '["exporter-http"]'
        ? true
        : undefined;
    });
    const { coder } = await coderd(namespace);
    assert.equal(envOf(coder).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:2112");
  });

  test("pii with the user's own 0.0.0.0 address kept (Respect): PIIProtected=False PIIExposed, not Ready", async (t) => {
    const { namespace } = await setup(
      t,
      { exporter: { config: { pii: { hashLabels: ["username"] } } } },
      [{ name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9100" }],
    );
    const cr = await waitForCondition(namespace, "PIIProtected", "False", "PIIExposed");
    assert.match(
      condition(cr, "PIIProtected")?.message ?? "",
      /Deployment coder: the coderd container sets CODER_PROMETHEUS_ADDRESS=0\.0\.0\.0:9100 itself/,
    );
    assert.equal(condition(cr, "Ready")?.status, "False");
    assert.equal(condition(cr, "Ready")?.reason, "PIIExposed");
    const { coder } = await coderd(namespace);
    assert.equal(envOf(coder).CODER_PROMETHEUS_ADDRESS, "0.0.0.0:9100", "the user's value is kept");
    const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
    assert.deepEqual(
      service.spec?.ports?.map((p) => p.name),
      ["exporter-http"],
      "the Service still does not expose coderd",
    );

    // Override: coder-metrics takes the address over and puts it on loopback.
    await clients.objects.patch(
      coderMetrics(namespace, { coder: { existingSettings: "Override" } }),
      undefined,
      undefined,
      "test",
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    await waitForCondition(namespace, "PIIProtected", "True", "LoopbackOnly");
    const after = await coderd(namespace);
    assert.equal(envOf(after.coder).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:2112");
  });

  test("an exporter image outside the allow-list: ExporterImageNotAllowed and zero changes to the Deployment", async (t) => {
    const namespace = await freshNamespace(t, clients);
    const controller = await startController(t, [namespace]);
    const created = await createCoderDeployment(clients, namespace);
    await clients.objects.create(
      coderMetrics(namespace, { exporter: { image: "registry.example.com/anything:1" } }),
    );
    const cr = await waitForCondition(
      namespace,
      "CoderConfigured",
      "False",
      "ExporterImageNotAllowed",
    );
    assert.match(
      condition(cr, "CoderConfigured")?.message ?? "",
      /"registry\.example\.com\/anything:1" is not in the controller's allowed exporter images \(ghcr\.io\/coder-metrics\/coder-metrics\)/,
    );
    assert.equal(condition(cr, "Ready")?.reason, "ExporterImageNotAllowed");
    await resyncAndSettle(controller);
    const { deployment } = await coderd(namespace);
    assert.equal(deployment.metadata?.resourceVersion, created.metadata?.resourceVersion);
    assert.equal(deployment.metadata?.generation, created.metadata?.generation);
    assert.equal(
      deployment.metadata?.managedFields?.some((f) => f.manager === "coder-metrics") ?? false,
      false,
      "no field applied by coder-metrics",
    );
  });

  test("an image the operator allowed (--allowed-exporter-images) is injected", async (t) => {
    const namespace = await freshNamespace(t, clients);
    await startController(t, [namespace], {
      allowedExporterImages: ["registry.example.com/team/"],
    });
    await createCoderDeployment(clients, namespace);
    await clients.objects.create(
      coderMetrics(namespace, { exporter: { image: "registry.example.com/team/exporter:2" } }),
    );
    await waitForCondition(namespace, "CoderConfigured", "True");
    const { exporter } = await coderd(namespace);
    assert.equal(exporter?.image, "registry.example.com/team/exporter:2");
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
    assert.deepEqual(
      coder.env?.map((e) => [e.name, e.value]),
      coderDeployment({ namespace }).spec?.template.spec?.containers[0]?.env?.map((e) => [
        e.name,
        e.value,
      ]),
      "the chart's env, as it was",
    );
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

describe("the API server's answers", () => {
  test("an apply the API server refuses (a ValidatingAdmissionPolicy): the step's condition False with the API's reason, a Warning Event, backoff; allowed again: Ready", async (t) => {
    const namespace = await freshNamespace(t, clients);
    const name = `cm-test-no-sidecar-${namespace}`;
    const policyRef = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "ValidatingAdmissionPolicy",
      metadata: { name },
    };
    const bindingRef = { ...policyRef, kind: "ValidatingAdmissionPolicyBinding" };
    await clients.objects.create({
      ...policyRef,
      spec: {
        failurePolicy: "Fail",
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ["apps"],
              apiVersions: ["v1"],
              operations: ["CREATE", "UPDATE"],
              resources: ["deployments"],
            },
          ],
        },
        validations: [
          {
            expression:
              "!object.spec.template.spec.containers.exists(c, c.name == 'coder-metrics-exporter')",
            message: "no sidecars in this namespace",
          },
        ],
      },
    });
    t.after(() => clients.objects.delete(policyRef).catch(() => undefined));
    await clients.objects.create({
      ...bindingRef,
      spec: {
        policyName: name,
        validationActions: ["Deny"],
        matchResources: {
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } },
        },
      },
    });
    t.after(() => clients.objects.delete(bindingRef).catch(() => undefined));
    await createCoderDeployment(clients, namespace);
    // Policies load asynchronously: wait until a dry run is denied.
    await eventually("the policy to be enforced", async () => {
      try {
        await patchContainer(
          clients,
          namespace,
          { name: "coder-metrics-exporter", image: "busybox" },
          { fieldManager: "probe" },
          "All",
        );
        return undefined;
      } catch (err) {
        return /no sidecars/.test(String((err as { body?: unknown }).body)) ? true : undefined;
      }
    });

    const controller = await startController(t, [namespace]);
    await clients.objects.create(coderMetrics(namespace));
    const cr = await waitForCondition(namespace, "CoderConfigured", "False", "Invalid");
    const message = condition(cr, "CoderConfigured")?.message ?? "";
    assert.match(
      message,
      new RegExp(
        `Deployment ${namespace}/coder: the API server refused the change \\(Invalid\\): .*ValidatingAdmissionPolicy '${name}'.*no sidecars in this namespace`,
      ),
    );
    assert.equal(condition(cr, "Ready")?.status, "False");
    assert.equal(condition(cr, "Ready")?.reason, "Invalid");
    assert.equal(cr.status?.deployments?.[0]?.configured, false);
    const warning = await eventually("a Warning Event on the CoderMetrics", async () => {
      const events = await clients.objects.list<
        k8s.KubernetesObject & {
          type: string;
          reason: string;
          note: string;
          regarding: { kind: string; name: string };
        }
      >("events.k8s.io/v1", "Event", namespace);
      return events.items.find(
        (e) =>
          e.type === "Warning" &&
          e.reason === "Invalid" &&
          e.regarding.kind === "CoderMetrics" &&
          /Deployment .*refused/.test(e.note),
      );
    });
    assert.equal(warning.regarding.name, "coder");
    // Backing off, not giving up: the key is retried.
    await eventually("retries", async () => {
      const retries = await samples(controller, "coder_metrics_controller_workqueue_retries_total");
      return (retries[0]?.value ?? 0) >= 2 ? true : undefined;
    });
    const { exporter } = await coderd(namespace);
    assert.equal(exporter, undefined, "nothing was written past the policy");

    await clients.objects.delete(bindingRef);
    await eventually(
      "Ready once the policy is gone",
      async () => {
        const now = await readCr(namespace);
        return condition(now, "Ready")?.status === "True" ? true : undefined;
      },
      { timeoutMs: 90_000 },
    );
  });

  test("quantities the API server rewrites (cpu: 0.5 → 500m, 1024Mi → 1Gi): 0 writes over 5 resyncs", async (t) => {
    const { namespace, controller } = await setup(t, {
      exporter: {
        resources: {
          requests: { cpu: "0.5", memory: "1024Mi" },
          limits: { cpu: "1000m", memory: "1Gi", "ephemeral-storage": 1000000000 },
        },
      },
    });
    await waitForCondition(namespace, "Ready", "True");
    await settled(controller);
    const { exporter } = await coderd(namespace);
    assert.deepEqual(
      JSON.parse(JSON.stringify(exporter?.resources)),
      {
        requests: { cpu: "500m", memory: "1Gi" },
        limits: { cpu: "1", memory: "1Gi", "ephemeral-storage": "1G" },
      },
      "the API server keeps them in its canonical form",
    );
    const writesBefore = await writeCount(controller);
    for (let i = 0; i < 5; i++) await resyncAndSettle(controller);
    assert.equal(await writeCount(controller), writesBefore, "nothing written for equal amounts");
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
    [
      "pii with monitor.target Coderd (raw personal data to Prometheus)",
      {
        monitor: { target: "Coderd" },
        exporter: { config: { pii: { hashLabels: ["username"] } } },
      },
      /spec\.monitor\.target: Invalid value.*monitor\.target Coderd scrapes coderd's raw metrics, which carry the user names and e-mail addresses exporter\.config\.pii is meant to hash or drop/,
    ],
    [
      "counterStateTTL of zero",
      { exporter: { config: { counterStateTTL: "0s" } } },
      /counterStateTTL: Invalid value.*must be positive/,
    ],
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
