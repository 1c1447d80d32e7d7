// The chart's RBAC is enough, and no more: the real controller, running with a
// token of the ServiceAccount the chart creates, reconciles a CoderMetrics to
// Ready — watching all namespaces (ClusterRole) and in namespaced mode
// (watchNamespaces: a Role per namespace) — and may not read Secrets. And the
// people who run Coder: a RoleBinding to the built-in view, edit or admin role
// covers CoderMetrics, through the chart's aggregated ClusterRoles.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import type { CoderMetrics } from "../../../controller/api/v1alpha1.ts";
import { kubeFetch, type KubeResponse } from "../../../controller/operator/kube-fetch.ts";
import { findBinaries } from "../../cluster/binaries.ts";
import { startControllerManager } from "../../cluster/control-plane.ts";
import { installCoderMetricsCrd, installMonitoringCrds } from "../../support/crds.ts";
import { startController } from "../../support/controller.ts";
import { helm, type PackagedChart, packageChart, unstampedServer } from "../../support/helm.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";

const clients = testClients();
const work = mkdtempSync(join(tmpdir(), "coder-metrics-rbac-"));
// What users install: the chart as `helm package` makes it.
let chart: PackagedChart | undefined;

before(async () => {
  await installCoderMetricsCrd(clients);
  await installMonitoringCrds(clients, ["servicemonitors", "podmonitors", "prometheuses"]);
  const version = (await kubeFetch(clients.config, "GET", "/version")).body as {
    gitVersion?: string;
  };
  chart = packageChart({ withoutKubeVersion: unstampedServer(version.gitVersion) });
});
after(() => chart?.remove());
after(() => rmSync(work, { recursive: true, force: true }));

function chartPath(): string {
  assert.ok(chart, "the chart was packaged");
  return chart.path;
}

function ok(response: KubeResponse, what: string): void {
  assert.ok(
    response.status < 300,
    `${what}: HTTP ${response.status}: ${JSON.stringify(response.body)}`,
  );
}

/** Installs the chart and returns a kubeconfig that authenticates as its ServiceAccount. */
async function installAs(
  t: TestContext,
  namespace: string,
  values: string[],
): Promise<{ kubeconfigPath: string; user: string }> {
  const release = `cm-${randomBytes(3).toString("hex")}`;
  const result = helm(["install", release, chartPath(), "--namespace", namespace, ...values]);
  assert.equal(result.status, 0, result.stderr);
  t.after(() => helm(["uninstall", release, "--namespace", namespace]));
  const serviceAccount = `${release}-coder-metrics`;
  const response = await kubeFetch(
    clients.config,
    "POST",
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    {
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600 },
      },
    },
  );
  ok(response, "a token for the chart's ServiceAccount");
  const token = (response.body as { status: { token: string } }).status.token;
  const cluster = clients.config.getCurrentCluster();
  assert.ok(cluster);
  const ca =
    cluster.caData ??
    (cluster.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
  const path = join(work, `${release}.kubeconfig`);
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "test",
          cluster: {
            server: cluster.server,
            ...(ca ? { "certificate-authority-data": ca } : {}),
            ...(cluster.skipTLSVerify ? { "insecure-skip-tls-verify": true } : {}),
          },
        },
      ],
      users: [{ name: serviceAccount, user: { token } }],
      contexts: [{ name: "sa", context: { cluster: "test", user: serviceAccount } }],
      "current-context": "sa",
    }),
  );
  return { kubeconfigPath: path, user: `system:serviceaccount:${namespace}:${serviceAccount}` };
}

async function can(
  user: string,
  verb: string,
  resource: string,
  namespace?: string,
  group = "",
): Promise<boolean> {
  const response = await kubeFetch(
    clients.config,
    "POST",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    {
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user,
          resourceAttributes: { verb, resource, group, ...(namespace ? { namespace } : {}) },
        },
      },
    },
  );
  ok(response, "SubjectAccessReview");
  return (response.body as { status: { allowed: boolean } }).status.allowed;
}

async function coderAndCr(namespace: string): Promise<void> {
  const labels = { "app.kubernetes.io/name": "coder" };
  await createCoderDeployment(clients, namespace, { labels });
  await clients.objects.create({
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
    spec: { monitor: { labels: { release: "kube-prometheus-stack" } } },
  } as never);
}

async function waitReady(namespace: string): Promise<CoderMetrics> {
  return eventually(
    `CoderMetrics ${namespace}/coder to be Ready`,
    async () => {
      const response = await kubeFetch(
        clients.config,
        "GET",
        `/apis/coder-metrics.io/v1alpha1/namespaces/${namespace}/codermetrics/coder`,
      );
      const cr = response.body as CoderMetrics;
      const ready = cr.status?.conditions?.find((c) => c.type === "Ready");
      return ready?.status === "True" ? cr : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

describe("chart: RBAC", () => {
  test("cluster-wide: the controller reconciles as the chart's ServiceAccount and cannot read Secrets", async (t) => {
    const namespace = await freshNamespace(t, clients, "cm-rbac");
    const coderNamespace = await freshNamespace(t, clients, "cm-rbac-coder");
    const { kubeconfigPath, user } = await installAs(t, namespace, []);
    await startController(t, [coderNamespace], { kubeconfigPath });
    await coderAndCr(coderNamespace);
    const cr = await waitReady(coderNamespace);
    assert.equal(cr.status?.monitor?.kind, "ServiceMonitor");

    assert.equal(await can(user, "patch", "deployments", coderNamespace, "apps"), true);
    assert.equal(await can(user, "list", "prometheuses", undefined, "monitoring.coreos.com"), true);
    assert.equal(await can(user, "get", "secrets", coderNamespace), false, "no Secrets");
    assert.equal(await can(user, "list", "secrets"), false, "no Secrets");
    assert.equal(await can(user, "delete", "deployments", coderNamespace, "apps"), false);
    assert.equal(await can(user, "update", "leases", namespace, "coordination.k8s.io"), true);
    assert.equal(await can(user, "update", "leases", coderNamespace, "coordination.k8s.io"), false);
  });

  test("namespaced mode: the controller reconciles with only the Roles in the watched namespace", async (t) => {
    const namespace = await freshNamespace(t, clients, "cm-rbac");
    const coderNamespace = await freshNamespace(t, clients, "cm-rbac-coder");
    const otherNamespace = await freshNamespace(t, clients, "cm-rbac-other");
    const { kubeconfigPath, user } = await installAs(t, namespace, [
      "--set",
      `watchNamespaces={${coderNamespace}}`,
    ]);
    await startController(t, [coderNamespace], { kubeconfigPath });
    await coderAndCr(coderNamespace);
    await waitReady(coderNamespace);

    assert.equal(await can(user, "patch", "deployments", coderNamespace, "apps"), true);
    assert.equal(await can(user, "list", "deployments", otherNamespace, "apps"), false);
    assert.equal(await can(user, "list", "deployments", undefined, "apps"), false);
    assert.equal(
      await can(user, "list", "prometheuses", undefined, "monitoring.coreos.com"),
      false,
    );
    assert.equal(await can(user, "get", "secrets", coderNamespace), false, "no Secrets");
  });
});

/**
 * Aggregated ClusterRoles get their rules from kube-controller-manager's
 * clusterrole-aggregation controller. The default integration control plane has no
 * kube-controller-manager: run the real one with only that controller.
 */
async function ensureRoleAggregation(t: TestContext): Promise<void> {
  if (process.env.TEST_CONTROLLER_MANAGER === "true" || process.env.USE_EXISTING_CLUSTER === "true")
    return;
  const kubeconfigPath = process.env.KUBECONFIG;
  assert.ok(kubeconfigPath, "KUBECONFIG from the global setup");
  const dir = mkdtempSync(join(work, "kcm-"));
  const kcm = await startControllerManager({
    binary: findBinaries().kubeControllerManager,
    kubeconfigPath,
    dir,
    controllers: "clusterrole-aggregation-controller",
  });
  t.after(() => kcm.stop());
}

async function bindClusterRole(namespace: string, role: string, user: string): Promise<void> {
  const response = await kubeFetch(
    clients.config,
    "POST",
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`,
    {
      body: {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: `${role}-${user}` },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }],
      },
    },
  );
  ok(response, `RoleBinding of ${user} to ${role}`);
}

describe("chart: CoderMetrics for namespace users (aggregated to view, edit, admin)", () => {
  test("view reads CoderMetrics, edit and admin manage them, only in their namespace; nobody gets status writes", async (t) => {
    await ensureRoleAggregation(t);
    const release = await freshNamespace(t, clients, "cm-agg");
    const team = await freshNamespace(t, clients, "cm-agg-team");
    const other = await freshNamespace(t, clients, "cm-agg-other");
    await installAs(t, release, []);
    const tag = randomBytes(3).toString("hex");
    const [viewer, editor, admin] = ["viewer", "editor", "admin"].map((u) => `${u}-${tag}`) as [
      string,
      string,
      string,
    ];
    await bindClusterRole(team, "view", viewer);
    await bindClusterRole(team, "edit", editor);
    await bindClusterRole(team, "admin", admin);
    const group = "coder-metrics.io";
    // The aggregation controller fills view/edit/admin in asynchronously.
    await eventually(
      "edit (and admin, through edit) to include the chart's editor rules",
      async () =>
        (await can(editor, "create", "codermetrics", team, group)) &&
        (await can(admin, "create", "codermetrics", team, group)) &&
        (await can(viewer, "list", "codermetrics", team, group))
          ? true
          : undefined,
      { timeoutMs: 60_000 },
    );

    for (const verb of ["get", "list", "watch"]) {
      assert.equal(await can(viewer, verb, "codermetrics", team, group), true, `view: ${verb}`);
    }
    for (const verb of ["create", "update", "patch", "delete"]) {
      assert.equal(await can(viewer, verb, "codermetrics", team, group), false, `view: no ${verb}`);
      assert.equal(await can(editor, verb, "codermetrics", team, group), true, `edit: ${verb}`);
      assert.equal(await can(admin, verb, "codermetrics", team, group), true, `admin: ${verb}`);
    }
    for (const user of [viewer, editor, admin]) {
      assert.equal(
        await can(user, "list", "codermetrics", other, group),
        false,
        `${user} elsewhere`,
      );
    }
    const canStatus = async (user: string, verb: string) => {
      const response = await kubeFetch(
        clients.config,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
          body: {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user,
              resourceAttributes: {
                verb,
                group,
                resource: "codermetrics",
                subresource: "status",
                namespace: team,
              },
            },
          },
        },
      );
      ok(response, "SubjectAccessReview");
      return (response.body as { status: { allowed: boolean } }).status.allowed;
    };
    assert.equal(await canStatus(viewer, "get"), true, "view reads status");
    assert.equal(await canStatus(editor, "update"), false, "status is the controller's to write");
    assert.equal(await canStatus(admin, "patch"), false, "status is the controller's to write");
  });
});
