// The chart, packaged as users get it (`helm package` → `helm install
// ./coder-metrics-<version>.tgz`), and manifests/ against a real kube-apiserver:
// helm install, upgrade and uninstall work; the CRD is served; the examples are accepted; the
// controller's Pod and the sidecar it injects are admitted under Pod Security
// Standards "restricted". (Without kube-controller-manager no Pod is created
// from the Deployment, so Pods are checked with dryRun=All.)
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { V1Container, V1Deployment, V1PodSpec } from "@kubernetes/client-node";
import { resolveSpec } from "../../../controller/api/defaults.ts";
import { parseCoderAddress } from "../../../controller/desired/coder-address.ts";
import { exporterContainer, exporterVolumes } from "../../../controller/desired/coderd.ts";
import { kubeFetch, type KubeResponse } from "../../../controller/operator/kube-fetch.ts";
import { installMonitoringCrds } from "../../support/crds.ts";
import {
  helm,
  type KubeObject,
  type PackagedChart,
  packageChart,
  parseManifests,
  repoRoot,
  unstampedServer,
} from "../../support/helm.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";
import { manifestsPath } from "../../tools/manifests.ts";

const clients = testClients();
const packageVersion = (
  JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }
).version;
const restricted = { "pod-security.kubernetes.io/enforce": "restricted" };

// What users install: `helm package` → `helm install ./coder-metrics-<version>.tgz`.
let packaged: PackagedChart | undefined;
let chart = "";
before(async () => {
  packaged = await installableChart();
  chart = packaged.path;
});
after(() => packaged?.remove());
before(async () => {
  // The ServiceMonitor and PrometheusRule the chart can render need their CRDs.
  await installMonitoringCrds(clients, [
    "servicemonitors",
    "podmonitors",
    "prometheuses",
    "prometheusrules",
  ]);
});

function ok(response: KubeResponse, what: string): void {
  assert.ok(
    response.status < 300,
    `${what}: HTTP ${response.status}: ${JSON.stringify(response.body)}`,
  );
}

async function get(path: string): Promise<KubeResponse> {
  return kubeFetch(clients.config, "GET", path);
}

/** A namespace for this test, enforcing Pod Security Standards restricted. */
async function restrictedNamespace(
  t: Parameters<typeof freshNamespace>[0],
  prefix: string,
): Promise<string> {
  const namespace = await freshNamespace(t, clients, prefix);
  ok(
    await kubeFetch(clients.config, "PATCH", `/api/v1/namespaces/${namespace}`, {
      body: { metadata: { labels: restricted } },
      contentType: "application/merge-patch+json",
    }),
    "labelling the namespace",
  );
  return namespace;
}

/** Server-side apply (what `kubectl apply --server-side` sends). */
async function apply(object: KubeObject, dryRun = false): Promise<KubeResponse> {
  const [group, version] = object.apiVersion.includes("/")
    ? object.apiVersion.split("/")
    : ["", object.apiVersion];
  const discovery = await get(group ? `/apis/${group}/${version}` : `/api/${version}`);
  ok(discovery, `discovery of ${object.apiVersion}`);
  const resource = (
    discovery.body as { resources: { kind: string; name: string; namespaced: boolean }[] }
  ).resources.find((r) => r.kind === object.kind && !r.name.includes("/"));
  assert.ok(resource, `${object.apiVersion} ${object.kind} is served`);
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  const scope = resource.namespaced ? `/namespaces/${object.metadata.namespace}` : "";
  const query = `fieldManager=kubectl&force=true${dryRun ? "&dryRun=All" : ""}`;
  return kubeFetch(
    clients.config,
    "PATCH",
    `${base}${scope}/${resource.name}/${object.metadata.name}?${query}`,
    { body: object, contentType: "application/apply-patch+yaml" },
  );
}

/** A ServiceAccount for dry-run Pods (with kube-controller-manager, admission looks it up). */
async function podServiceAccount(namespace: string): Promise<string> {
  const name = "coder";
  ok(
    await apply({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } }),
    "ServiceAccount",
  );
  return name;
}

/** Creates a Pod with dryRun=All: admission (PodSecurity included) runs, nothing is stored. */
async function dryRunPod(
  namespace: string,
  spec: V1PodSpec,
  name = "check",
): Promise<KubeResponse> {
  return kubeFetch(clients.config, "POST", `/api/v1/namespaces/${namespace}/pods?dryRun=All`, {
    body: { apiVersion: "v1", kind: "Pod", metadata: { name, namespace }, spec },
  });
}

/**
 * The chart to install, packaged. kube-apiserver built from source without
 * version stamping reports v0.0.0-master, which no kubeVersion constraint
 * accepts; against such a server, the package is made from a copy without it.
 */
async function installableChart(): Promise<PackagedChart> {
  const version = (await get("/version")).body as { gitVersion?: string };
  const withoutKubeVersion = unstampedServer(version.gitVersion);
  if (withoutKubeVersion) {
    process.stderr.write(
      `chart: kube-apiserver reports ${version.gitVersion}; packaging a copy without kubeVersion\n`,
    );
  }
  const result = packageChart({ withoutKubeVersion });
  assert.equal(basename(result.path), `coder-metrics-${packageVersion}.tgz`);
  return result;
}

function releaseName(): string {
  return `cm-${randomBytes(3).toString("hex")}`;
}

function helmOrFail(args: string[]): string {
  const result = helm(args);
  assert.equal(result.status, 0, `helm ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

describe("chart: helm install, upgrade, uninstall", () => {
  test("a full install is accepted, and upgrade to namespaced mode and uninstall clean up", async (t) => {
    const namespace = await restrictedNamespace(t, "cm-chart");
    const coderNamespace = await freshNamespace(t, clients, "cm-coder");
    const release = releaseName();
    const fullname = `${release}-coder-metrics`;
    t.after(() => helm(["uninstall", release, "--namespace", namespace]));

    const notes = helmOrFail([
      "install",
      release,
      chart,
      "--namespace",
      namespace,
      ...["--set", "replicaCount=2,metrics.serviceMonitor.enabled=true"],
      ...["--set", "prometheusRule.enabled=true,dashboards.enabled=true"],
      ...["--set", `instances[0].name=coder,instances[0].namespace=${coderNamespace}`],
      ...["--set", "instances[0].spec.monitor.labels.release=kube-prometheus-stack"],
    ]);
    assert.match(notes, /kubectl get codermetrics -A/, "NOTES.txt tells the next command");

    // The CRD (from crds/) is served, and the instance from values was stored by it.
    ok(await get("/apis/coder-metrics.io/v1alpha1"), "coder-metrics.io/v1alpha1 is served");
    const instance = await get(
      `/apis/coder-metrics.io/v1alpha1/namespaces/${coderNamespace}/codermetrics/coder`,
    );
    ok(instance, "the CoderMetrics from values");
    // The API server applied the CRD's defaults: the chart's instance is a complete spec.
    const spec = (
      instance.body as { spec: { monitor: { mode: string; labels: Record<string, string> } } }
    ).spec;
    assert.equal(spec.monitor.mode, "Auto");
    assert.equal(spec.monitor.labels.release, "kube-prometheus-stack");

    for (const path of [
      `/apis/apps/v1/namespaces/${namespace}/deployments/${fullname}`,
      `/api/v1/namespaces/${namespace}/serviceaccounts/${fullname}`,
      `/api/v1/namespaces/${namespace}/services/${fullname}-metrics`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${fullname}`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${fullname}`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/roles/${fullname}-leader-election`,
      `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${fullname}`,
      `/apis/monitoring.coreos.com/v1/namespaces/${namespace}/servicemonitors/${fullname}`,
      `/apis/monitoring.coreos.com/v1/namespaces/${namespace}/prometheusrules/${fullname}`,
      `/api/v1/namespaces/${namespace}/configmaps/${fullname}-coder`,
    ])
      ok(await get(path), path);

    // The controller's Pod, as the Deployment would create it, passes "restricted".
    const deployment = (await get(`/apis/apps/v1/namespaces/${namespace}/deployments/${fullname}`))
      .body as V1Deployment;
    const podSpec = deployment.spec?.template.spec;
    assert.ok(podSpec);
    ok(
      await dryRunPod(namespace, podSpec, "controller"),
      "the controller Pod under PSS restricted",
    );

    // Upgrade: one replica, watching only the Coder namespace.
    helmOrFail([
      "upgrade",
      release,
      chart,
      "--namespace",
      namespace,
      "--reuse-values",
      ...["--set", `replicaCount=1,watchNamespaces={${coderNamespace}}`],
    ]);
    assert.equal(
      (await get(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${fullname}`)).status,
      404,
    );
    ok(
      await get(
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${coderNamespace}/roles/${fullname}`,
      ),
      "Role in the watched namespace",
    );
    ok(
      await get(
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${coderNamespace}/rolebindings/${fullname}`,
      ),
      "RoleBinding in the watched namespace",
    );
    assert.equal(
      (await get(`/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${fullname}`))
        .status,
      404,
    );
    const upgraded = (await get(`/apis/apps/v1/namespaces/${namespace}/deployments/${fullname}`))
      .body as V1Deployment;
    assert.equal(upgraded.spec?.replicas, 1);
    assert.ok(
      upgraded.spec?.template.spec?.containers[0]?.args?.includes(
        `--watch-namespaces=${coderNamespace}`,
      ),
    );

    // Uninstall removes what the release rendered; Helm keeps CRDs (and so users' CoderMetrics).
    helmOrFail(["uninstall", release, "--namespace", namespace]);
    for (const path of [
      `/apis/apps/v1/namespaces/${namespace}/deployments/${fullname}`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${coderNamespace}/roles/${fullname}`,
      `/apis/monitoring.coreos.com/v1/namespaces/${namespace}/prometheusrules/${fullname}`,
    ])
      await eventually(`${path} to be deleted`, async () =>
        (await get(path)).status === 404 ? true : undefined,
      );
    ok(
      await get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/codermetrics.coder-metrics.io",
      ),
      "the CRD stays",
    );
  });

  test("schema errors stop helm install before anything is created", async (t) => {
    const namespace = await freshNamespace(t, clients, "cm-chart");
    const result = helm([
      "install",
      releaseName(),
      chart,
      "--namespace",
      namespace,
      "--set",
      "logLevel=verbose",
    ]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /\/logLevel/);
    const deployments = (await get(`/apis/apps/v1/namespaces/${namespace}/deployments`)).body as {
      items: unknown[];
    };
    assert.deepEqual(deployments.items, []);
  });
});

describe("manifests/ against the API server", () => {
  const installObjects = parseManifests(readFileSync(manifestsPath, "utf8"));

  test("kubectl apply --server-side -f manifests/install.yaml is accepted, and its controller Pod passes restricted", async (t) => {
    // A dry run, moved into a test namespace, so a real cluster's install is never touched.
    const namespace = await restrictedNamespace(t, "cm-manifests");
    for (const object of installObjects) {
      const moved = object.metadata.namespace
        ? { ...object, metadata: { ...object.metadata, namespace } }
        : object;
      // The ServiceAccount is created for real: Pod admission looks it up.
      const dryRun = object.kind !== "ServiceAccount";
      ok(await apply(moved, dryRun), `${object.kind}/${object.metadata.name}`);
    }
    const deployment = installObjects.find((o) => o.kind === "Deployment");
    assert.ok(deployment);
    ok(
      await dryRunPod(namespace, deployment.spec.template.spec, "controller"),
      "the controller Pod under PSS restricted",
    );
  });

  const examples = readdirSync(join(repoRoot, "manifests/examples")).filter((f) =>
    f.endsWith(".yaml"),
  );
  for (const file of examples) {
    test(`manifests/examples/${file} is accepted by the CRD`, async (t) => {
      const namespace = await freshNamespace(t, clients, "cm-example");
      const [cr] = parseManifests(readFileSync(join(repoRoot, "manifests/examples", file), "utf8"));
      assert.ok(cr);
      ok(await apply({ ...cr, metadata: { ...cr.metadata, namespace } }), file);
    });
  }
});

describe("Pod Security Standards restricted", () => {
  test("the injected exporter sidecar is admitted next to a compliant coderd", async (t) => {
    const namespace = await restrictedNamespace(t, "cm-pss");
    const spec = resolveSpec({
      exporter: {
        config: { pii: { hashLabels: ["username"], hashKeySecretRef: { name: "k", key: "key" } } },
      },
    });
    const address = parseCoderAddress(spec.coder.address);
    assert.ok(address);
    const coderd: V1Container = {
      name: "coder",
      image: "ghcr.io/coder/coder:v2.24.1",
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 1000,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      },
    };
    const sidecar = exporterContainer(spec, "ghcr.io/coder-metrics/coder-metrics:0.1.0", address);
    // The volumes the controller adds: config, hash key and the emptyDir over the token path.
    const volumes = exporterVolumes(spec, "coder-exporter-config");
    ok(
      await dryRunPod(namespace, {
        serviceAccountName: await podServiceAccount(namespace),
        containers: [coderd, sidecar],
        volumes,
      }),
      "coderd + exporter sidecar",
    );
  });

  test("the namespace really enforces it: a Pod without a securityContext is refused", async (t) => {
    const namespace = await restrictedNamespace(t, "cm-pss");
    const response = await dryRunPod(namespace, {
      serviceAccountName: await podServiceAccount(namespace),
      containers: [{ name: "c", image: "busybox" }],
    });
    assert.equal(response.status, 403, JSON.stringify(response.body));
    assert.match(
      (response.body as { message: string }).message,
      /violates PodSecurity "restricted/,
    );
  });
});
