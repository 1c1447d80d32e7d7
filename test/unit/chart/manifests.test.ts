// manifests/: the plain-YAML install matches the chart, and the examples are
// CoderMetrics objects the controller accepts.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { resolveSpec } from "../../../controller/api/defaults.ts";
import { apiVersion, kind } from "../../../controller/api/v1alpha1.ts";
import { planExporterConfig } from "../../../controller/desired/exporter-config.ts";
import { chartDir, parseManifests, repoRoot } from "../../support/helm.ts";
import { installManifests, installNamespace, manifestsPath } from "../../tools/manifests.ts";

const examplesDir = join(repoRoot, "manifests/examples");

describe("manifests/install.yaml", () => {
  test("is what `make manifests` renders from the chart (run it after changing the chart)", () => {
    assert.equal(readFileSync(manifestsPath, "utf8"), installManifests());
  });

  test("holds the namespace, the CRD, RBAC and the controller, all in coder-metrics", () => {
    const objects = parseManifests(readFileSync(manifestsPath, "utf8"));
    const kinds = objects.map((o) => o.kind);
    assert.equal(kinds[0], "Namespace");
    assert.equal(kinds[1], "CustomResourceDefinition");
    for (const k of [
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "Role",
      "RoleBinding",
      "Deployment",
    ])
      assert.ok(kinds.includes(k), k);
    const namespace = objects[0]!;
    assert.equal(namespace.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    for (const o of objects.filter(
      (o) =>
        !["Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"].includes(
          o.kind,
        ),
    ))
      assert.equal(o.metadata.namespace, installNamespace, `${o.kind}/${o.metadata.name}`);
  });
});

describe("manifests/examples", () => {
  const files = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));

  test("cover minimal, kube-prometheus-stack, aggregation and PII hashing", () => {
    assert.deepEqual(files.sort(), [
      "aggregation.yaml",
      "kube-prometheus-stack.yaml",
      "minimal.yaml",
      "pii-hashing.yaml",
    ]);
  });

  for (const file of files) {
    test(`${file} is a CoderMetrics whose exporter config the exporter accepts`, () => {
      const objects = parseManifests(readFileSync(join(examplesDir, file), "utf8"));
      assert.equal(objects.length, 1);
      const cr = objects[0]!;
      assert.equal(cr.apiVersion, apiVersion);
      assert.equal(cr.kind, kind);
      const spec = resolveSpec(cr.spec);
      const plan = planExporterConfig(spec.exporter.config);
      assert.ok(plan.ok, plan.ok ? "" : plan.message);
    });
  }

  test("the kube-prometheus-stack example labels its monitor for that Prometheus", () => {
    const cr = parse(readFileSync(join(examplesDir, "kube-prometheus-stack.yaml"), "utf8"));
    assert.equal(cr.spec.monitor.labels.release, "kube-prometheus-stack");
  });
});

describe("Chart.yaml", () => {
  const chart = parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8"));
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));

  test("appVersion is the package.json version, and Artifact Hub lists that image", () => {
    assert.equal(chart.appVersion, pkg.version);
    const images = parse(chart.annotations["artifacthub.io/images"]);
    assert.deepEqual(images, [
      { name: "coder-metrics", image: `ghcr.io/coder-metrics/coder-metrics:${pkg.version}` },
    ]);
  });

  test("is a v2 chart for Kubernetes 1.29 and later, with Artifact Hub's CRD annotations", () => {
    assert.equal(chart.apiVersion, "v2");
    assert.equal(chart.kubeVersion, ">=1.29.0-0");
    const crds = parse(chart.annotations["artifacthub.io/crds"]);
    assert.equal(crds[0].name, "codermetrics.coder-metrics.io");
    const examples = parse(chart.annotations["artifacthub.io/crdsExamples"]);
    assert.equal(examples[0].kind, kind);
  });
});
