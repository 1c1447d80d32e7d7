// `helm lint` and `helm template` of charts/coder-metrics: what each value
// changes in the objects a user would install.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import {
  chartDir,
  find,
  helm,
  type KubeObject,
  renderChart,
  renderError,
} from "../../support/helm.ts";

interface Rule {
  scope: string;
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
const rbacRules = parse(readFileSync(join(chartDir, "files/rbac-rules.yaml"), "utf8")) as Rule[];
const strip = ({ scope: _, ...rule }: Rule) => rule;
const rulesOf = (...scopes: string[]) =>
  rbacRules.filter((r) => scopes.includes(r.scope)).map(strip);

function one(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const found = find(objects, kind, name);
  assert.equal(
    found.length,
    1,
    `want exactly one ${kind}${name ? ` ${name}` : ""}, got ${found.length}`,
  );
  return found[0]!;
}

function controllerContainer(objects: KubeObject[]) {
  return one(objects, "Deployment").spec.template.spec.containers[0];
}

describe("chart: lint", () => {
  test("helm lint --strict passes with the default values", () => {
    const result = helm(["lint", "--strict", chartDir]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test("helm lint --strict passes with every optional object on", () => {
    const result = helm([
      "lint",
      "--strict",
      chartDir,
      ...["--set", "replicaCount=2,metrics.serviceMonitor.enabled=true"],
      ...["--set", "prometheusRule.enabled=true,dashboards.enabled=true"],
      ...["--set", "watchNamespaces={coder,coder-2},instances[0].name=coder"],
    ]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });
});

describe("chart: defaults", () => {
  const objects = renderChart();

  test("renders the controller, its ServiceAccount, cluster-wide RBAC, the lease Role, the metrics Service and the user roles, nothing optional", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      "ClusterRole/cm-coder-metrics",
      "ClusterRole/cm-coder-metrics-editor",
      "ClusterRole/cm-coder-metrics-viewer",
      "ClusterRoleBinding/cm-coder-metrics",
      "Deployment/cm-coder-metrics",
      "Role/cm-coder-metrics-leader-election",
      "RoleBinding/cm-coder-metrics-leader-election",
      "Service/cm-coder-metrics-metrics",
      "ServiceAccount/cm-coder-metrics",
    ]);
  });

  test("every object carries the standard app.kubernetes.io labels", () => {
    for (const o of objects) {
      const labels = o.metadata.labels ?? {};
      for (const key of [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
      ])
        assert.ok(labels[key], `${o.kind}/${o.metadata.name} lacks label ${key}`);
      assert.equal(labels["app.kubernetes.io/instance"], "cm");
    }
  });

  test("namespaced objects are in the release namespace", () => {
    for (const o of objects.filter((o) => !o.kind.startsWith("Cluster")))
      assert.equal(o.metadata.namespace, "coder-metrics", `${o.kind}/${o.metadata.name}`);
  });

  test("the Pod passes Pod Security Standards restricted by its settings", () => {
    const pod = one(objects, "Deployment").spec.template.spec;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    const sc = pod.containers[0].securityContext;
    assert.deepEqual(sc, {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    assert.ok(pod.containers[0].resources.requests.cpu);
    assert.ok(pod.containers[0].resources.limits.memory);
  });

  test("only the controller Pod mounts a token; its ServiceAccount does not by default", () => {
    assert.equal(one(objects, "ServiceAccount").automountServiceAccountToken, false);
    const pod = one(objects, "Deployment").spec.template.spec;
    assert.equal(pod.automountServiceAccountToken, true);
    assert.equal(pod.serviceAccountName, "cm-coder-metrics");
  });

  test("the controller gets its flags, its identity from the downward API, and probes on the metrics port", () => {
    const c = controllerContainer(objects);
    assert.equal(c.image, "ghcr.io/coder-metrics/coder-metrics:0.1.0");
    assert.deepEqual(c.args, [
      "controller",
      "--metrics-address=0.0.0.0:8080",
      "--exporter-image=ghcr.io/coder-metrics/coder-metrics:0.1.0",
      "--leader-elect=true",
      "--leader-election-id=cm-coder-metrics-controller",
      "--workers=4",
      "--resync=10m",
      "--log-level=info",
    ]);
    const env = Object.fromEntries(
      c.env.map(
        (e: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }) => [
          e.name,
          e.value ?? e.valueFrom?.fieldRef.fieldPath,
        ],
      ),
    );
    assert.deepEqual(env, {
      POD_NAME: "metadata.name",
      POD_NAMESPACE: "metadata.namespace",
      // V8's heap sized to the 384Mi limit.
      NODE_OPTIONS: "--max-semi-space-size=4 --max-old-space-size=256",
    });
    assert.equal(c.ports[0].containerPort, 8080);
    assert.equal(c.livenessProbe.httpGet.path, "/healthz");
    assert.equal(c.readinessProbe.httpGet.path, "/readyz");
  });

  test("the ClusterRole holds the watched and cluster-wide rules, and no access to Secrets", () => {
    const role = one(objects, "ClusterRole", "cm-coder-metrics");
    assert.deepEqual(role.rules, rulesOf("watched", "cluster"));
    for (const rule of role.rules as Rule[]) {
      assert.ok(!rule.resources.includes("secrets"), "no Secrets");
      assert.ok(!rule.resources.includes("*") && !rule.verbs.includes("*"), "no wildcards");
    }
    const binding = one(objects, "ClusterRoleBinding");
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: "cm-coder-metrics", namespace: "coder-metrics" },
    ]);
  });

  test("the user roles aggregate to view and edit and reach CoderMetrics only", () => {
    const viewer = one(objects, "ClusterRole", "cm-coder-metrics-viewer");
    const editor = one(objects, "ClusterRole", "cm-coder-metrics-editor");
    assert.equal(viewer.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"], "true");
    assert.equal(editor.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-edit"], "true");
    assert.equal(
      editor.metadata.labels?.["rbac.authorization.k8s.io/aggregate-to-view"],
      undefined,
    );
    for (const role of [viewer, editor]) {
      for (const rule of role.rules as Rule[]) {
        assert.deepEqual(rule.apiGroups, ["coder-metrics.io"]);
        assert.ok(
          rule.resources.every((r) => r.startsWith("codermetrics")),
          rule.resources.join(),
        );
      }
    }
    const verbsOf = (role: KubeObject, resource: string) =>
      (role.rules as Rule[]).filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs);
    assert.deepEqual(verbsOf(viewer, "codermetrics"), ["get", "list", "watch"]);
    assert.ok(verbsOf(editor, "codermetrics").includes("create"));
    assert.deepEqual(verbsOf(editor, "codermetrics/status"), ["get"], "status is the controller's");
  });

  test("the lease Role is in the release namespace and only grants leases", () => {
    const role = one(objects, "Role", "cm-coder-metrics-leader-election");
    assert.deepEqual(role.rules, [
      {
        apiGroups: ["coordination.k8s.io"],
        resources: ["leases"],
        verbs: ["get", "create", "update"],
      },
    ]);
  });

  test("the metrics Service selects exactly the controller Pods", () => {
    const service = one(objects, "Service");
    const podLabels = one(objects, "Deployment").spec.template.metadata.labels;
    for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>))
      assert.equal(podLabels[k], v);
    assert.equal(service.spec.ports[0].targetPort, "http-metrics");
  });
});

describe("chart: values", () => {
  test("watchNamespaces renders a Role and RoleBinding per namespace and no cluster-wide RBAC", () => {
    const objects = renderChart({ values: { watchNamespaces: ["coder", "coder-staging"] } });
    assert.deepEqual(
      find(objects, "ClusterRole").map((r) => r.metadata.name),
      ["cm-coder-metrics-viewer", "cm-coder-metrics-editor"],
      "only the user roles",
    );
    assert.equal(find(objects, "ClusterRoleBinding").length, 0);
    const roles = find(objects, "Role", "cm-coder-metrics");
    assert.deepEqual(
      roles.map((r) => r.metadata.namespace),
      ["coder", "coder-staging"],
    );
    for (const role of roles) assert.deepEqual(role.rules, rulesOf("watched"));
    const bindings = find(objects, "RoleBinding", "cm-coder-metrics");
    assert.deepEqual(
      bindings.map((b) => [b.metadata.namespace, b.subjects[0].namespace]),
      [
        ["coder", "coder-metrics"],
        ["coder-staging", "coder-metrics"],
      ],
    );
    assert.ok(controllerContainer(objects).args.includes("--watch-namespaces=coder,coder-staging"));
  });

  test("rbac.aggregatedRoles: false renders no user roles", () => {
    const objects = renderChart({ values: { rbac: { aggregatedRoles: false } } });
    assert.deepEqual(
      find(objects, "ClusterRole").map((r) => r.metadata.name),
      ["cm-coder-metrics"],
    );
  });

  test("exporter.allowedImages becomes --allowed-exporter-images", () => {
    assert.ok(
      !controllerContainer(renderChart()).args.some((a: string) =>
        a.startsWith("--allowed-exporter-images"),
      ),
      "none by default: the controller allows its own image repository",
    );
    const c = controllerContainer(
      renderChart({
        values: { exporter: { allowedImages: ["registry.example.com/team/", "ghcr.io/x/y"] } },
      }),
    );
    assert.ok(c.args.includes("--allowed-exporter-images=registry.example.com/team/,ghcr.io/x/y"));
  });

  test("rbac.create: false renders no RBAC", () => {
    const objects = renderChart({ values: { rbac: { create: false } } });
    assert.deepEqual(
      objects.filter((o) => o.apiVersion.startsWith("rbac.authorization.k8s.io")),
      [],
    );
  });

  test("instances render CoderMetrics objects, in the release namespace unless given", () => {
    const objects = renderChart({
      values: {
        instances: [
          { name: "coder" },
          {
            name: "staging",
            namespace: "coder-staging",
            spec: { monitor: { labels: { release: "kube-prometheus-stack" } } },
          },
        ],
      },
    });
    const crs = find(objects, "CoderMetrics");
    assert.deepEqual(
      crs.map((o) => [o.apiVersion, o.metadata.namespace, o.metadata.name, o.spec]),
      [
        ["coder-metrics.io/v1alpha1", "coder-metrics", "coder", {}],
        [
          "coder-metrics.io/v1alpha1",
          "coder-staging",
          "staging",
          { monitor: { labels: { release: "kube-prometheus-stack" } } },
        ],
      ],
    );
  });

  test("metrics.serviceMonitor.enabled renders a ServiceMonitor that selects the metrics Service's port", () => {
    assert.equal(find(renderChart(), "ServiceMonitor").length, 0);
    const objects = renderChart({
      values: {
        metrics: {
          serviceMonitor: { enabled: true, labels: { release: "kps" }, scrapeTimeout: "10s" },
        },
      },
    });
    const monitor = one(objects, "ServiceMonitor");
    const service = one(objects, "Service");
    assert.equal(monitor.metadata.labels?.release, "kps");
    assert.deepEqual(monitor.spec.namespaceSelector, { matchNames: ["coder-metrics"] });
    for (const [k, v] of Object.entries(
      monitor.spec.selector.matchLabels as Record<string, string>,
    ))
      assert.equal(service.metadata.labels?.[k], v, `Service label ${k}`);
    assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
    assert.equal(monitor.spec.endpoints[0].scrapeTimeout, "10s");
  });

  test("a ServiceMonitor without the Service fails with a message", () => {
    const error = renderError({
      metrics: { service: { enabled: false }, serviceMonitor: { enabled: true } },
    });
    assert.match(error, /serviceMonitor\.enabled needs metrics\.service\.enabled/);
  });

  test("the PodDisruptionBudget exists only with more than one replica", () => {
    assert.equal(
      find(renderChart({ values: { replicaCount: 1 } }), "PodDisruptionBudget").length,
      0,
    );
    const objects = renderChart({ values: { replicaCount: 3 } });
    const pdb = one(objects, "PodDisruptionBudget");
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector, one(objects, "Deployment").spec.selector);
    assert.equal(one(objects, "Deployment").spec.replicas, 3);
    const maxUnavailable = renderChart({
      values: { replicaCount: 2, podDisruptionBudget: { maxUnavailable: 1 } },
    });
    assert.deepEqual(one(maxUnavailable, "PodDisruptionBudget").spec.maxUnavailable, 1);
    assert.equal(one(maxUnavailable, "PodDisruptionBudget").spec.minAvailable, undefined);
  });

  test("several replicas without leader election fail with a message", () => {
    const error = renderError({ replicaCount: 2, leaderElection: { enabled: false } });
    assert.match(error, /replicaCount > 1 needs leaderElection\.enabled: true/);
  });

  test("leaderElection.enabled: false drops the lease Role and tells the controller", () => {
    const objects = renderChart({ values: { leaderElection: { enabled: false } } });
    assert.equal(find(objects, "Role").length, 0);
    assert.ok(controllerContainer(objects).args.includes("--leader-elect=false"));
  });

  test("image.tag overrides appVersion, for the controller and the default exporter image", () => {
    const c = controllerContainer(renderChart({ values: { image: { tag: "0.2.0-rc.1" } } }));
    assert.equal(c.image, "ghcr.io/coder-metrics/coder-metrics:0.2.0-rc.1");
    assert.ok(c.args.includes("--exporter-image=ghcr.io/coder-metrics/coder-metrics:0.2.0-rc.1"));
  });

  test("image.digest wins over the tag; repository and pullPolicy are honoured", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    const c = controllerContainer(
      renderChart({
        values: {
          image: { repository: "registry.example.com/cm", tag: "x", digest, pullPolicy: "Always" },
        },
      }),
    );
    assert.equal(c.image, `registry.example.com/cm@${digest}`);
    assert.equal(c.imagePullPolicy, "Always");
  });

  test("exporter.image sets the injected sidecar's image independently", () => {
    const c = controllerContainer(
      renderChart({ values: { exporter: { image: "registry.example.com/exporter:1" } } }),
    );
    assert.equal(c.image, "ghcr.io/coder-metrics/coder-metrics:0.1.0");
    assert.ok(c.args.includes("--exporter-image=registry.example.com/exporter:1"));
  });

  test("controller flags follow workers, resync, logLevel and extraArgs", () => {
    const c = controllerContainer(
      renderChart({
        values: { workers: 6, resync: "5m", logLevel: "debug", extraArgs: ["--foo=bar"] },
      }),
    );
    for (const flag of ["--workers=6", "--resync=5m", "--log-level=debug", "--foo=bar"])
      assert.ok(c.args.includes(flag), flag);
  });

  test("overriding one securityContext field keeps the other restricted defaults", () => {
    const pod = one(
      renderChart({ values: { podSecurityContext: { runAsUser: 1000 } } }),
      "Deployment",
    ).spec.template.spec;
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
  });

  test("serviceAccount.create: false uses the named ServiceAccount and renders none", () => {
    const objects = renderChart({
      values: { serviceAccount: { create: false, name: "existing" } },
    });
    assert.equal(find(objects, "ServiceAccount").length, 0);
    assert.equal(one(objects, "Deployment").spec.template.spec.serviceAccountName, "existing");
    assert.equal(one(objects, "ClusterRoleBinding").subjects[0].name, "existing");
  });

  test("fullnameOverride names every object", () => {
    const objects = renderChart({ values: { fullnameOverride: "cmx" } });
    assert.equal(one(objects, "Deployment").metadata.name, "cmx");
    assert.equal(one(objects, "ClusterRole", "cmx").metadata.name, "cmx");
    assert.equal(one(objects, "ClusterRole", "cmx-viewer").metadata.name, "cmx-viewer");
  });

  test("dashboards render one ConfigMap per dashboard with the Grafana sidecar label", () => {
    assert.equal(find(renderChart(), "ConfigMap").length, 0);
    const maps = find(
      renderChart({
        values: { dashboards: { enabled: true, annotations: { grafana_folder: "Coder" } } },
      }),
      "ConfigMap",
    );
    assert.ok(maps.length >= 1);
    for (const map of maps) {
      assert.equal(map.metadata.labels?.grafana_dashboard, "1");
      assert.equal(map.metadata.annotations?.grafana_folder, "Coder");
      for (const [key, json] of Object.entries(map.data as Record<string, string>)) {
        assert.match(key, /\.json$/);
        const dashboard = JSON.parse(json);
        assert.ok(dashboard.title && dashboard.uid && dashboard.panels.length > 0, key);
      }
    }
  });
});
