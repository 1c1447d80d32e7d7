import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  matchesSelector,
  unmetRequirements,
} from "../../../controller/discovery/label-selector.ts";
import {
  evaluateSelection,
  type MonitorLike,
  type PrometheusLike,
} from "../../../controller/discovery/prometheus-selection.ts";

describe("label selectors", () => {
  const labels = { app: "coder", tier: "web" };
  const cases: Array<[string, Parameters<typeof matchesSelector>[0], boolean]> = [
    ["empty selects all", {}, true],
    ["matchLabels hit", { matchLabels: { app: "coder" } }, true],
    ["matchLabels miss", { matchLabels: { app: "x" } }, false],
    ["In", { matchExpressions: [{ key: "tier", operator: "In", values: ["web", "db"] }] }, true],
    ["NotIn", { matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web"] }] }, false],
    [
      "NotIn on absent key",
      { matchExpressions: [{ key: "zone", operator: "NotIn", values: ["a"] }] },
      true,
    ],
    ["Exists", { matchExpressions: [{ key: "app", operator: "Exists" }] }, true],
    ["DoesNotExist", { matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, false],
    [
      "unknown operator never matches",
      { matchExpressions: [{ key: "app", operator: "Like" }] },
      false,
    ],
  ];
  for (const [name, selector, want] of cases)
    test(name, () => assert.equal(matchesSelector(selector, labels), want));
  test("unmet requirements are spelled for humans", () => {
    assert.deepEqual(unmetRequirements({ matchLabels: { release: "kps" } }, labels), [
      "release=kps",
    ]);
  });
});

describe("evaluateSelection (Prometheus Operator rules)", () => {
  const monitor: MonitorLike = {
    kind: "ServiceMonitor",
    namespace: "coder",
    labels: { app: "coder-metrics" },
    namespaceLabels: { "kubernetes.io/metadata.name": "coder" },
  };
  const kps: PrometheusLike = {
    kind: "Prometheus",
    namespace: "monitoring",
    name: "kps",
    serviceMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
    serviceMonitorNamespaceSelector: {},
  };

  test("no Prometheus at all", () => {
    const s = evaluateSelection([], monitor);
    assert.equal(s.reason, "NoPrometheus");
    assert.equal(s.discovered, false);
  });

  test("kube-prometheus-stack needs the release label, and says so", () => {
    const s = evaluateSelection([kps], monitor);
    assert.equal(s.discovered, false);
    assert.equal(s.reason, "NotSelected");
    assert.match(
      s.message,
      /Prometheus monitoring\/kps: its serviceMonitorSelector requires release=kube-prometheus-stack; add it to spec.monitor.labels/,
    );
  });

  test("with the release label it is selected", () => {
    const s = evaluateSelection([kps], {
      ...monitor,
      labels: { ...monitor.labels, release: "kube-prometheus-stack" },
    });
    assert.deepEqual([s.discovered, s.selectedBy], [true, ["monitoring/kps"]]);
  });

  test("a nil serviceMonitorSelector selects nothing; {} selects everything", () => {
    assert.match(
      evaluateSelection([{ ...kps, serviceMonitorSelector: undefined }], monitor).message,
      /unset, so it selects no ServiceMonitors/,
    );
    assert.equal(
      evaluateSelection([{ ...kps, serviceMonitorSelector: {} }], monitor).discovered,
      true,
    );
  });

  test("a nil namespace selector means the Prometheus's own namespace only", () => {
    const own = { ...kps, serviceMonitorSelector: {}, serviceMonitorNamespaceSelector: undefined };
    assert.match(evaluateSelection([own], monitor).message, /only watches namespace monitoring/);
    assert.equal(evaluateSelection([{ ...own, namespace: "coder" }], monitor).discovered, true);
  });

  test("namespace selectors look at the namespace's labels", () => {
    const p = {
      ...kps,
      serviceMonitorSelector: {},
      serviceMonitorNamespaceSelector: { matchLabels: { monitored: "true" } },
    };
    assert.match(
      evaluateSelection([p], monitor).message,
      /requires namespace labels monitored=true/,
    );
    assert.equal(
      evaluateSelection([p], { ...monitor, namespaceLabels: { monitored: "true" } }).discovered,
      true,
    );
  });

  test("PodMonitors are judged by the podMonitor selectors", () => {
    const p = {
      ...kps,
      podMonitorSelector: { matchLabels: { app: "coder-metrics" } },
      podMonitorNamespaceSelector: {},
    };
    assert.equal(evaluateSelection([p], { ...monitor, kind: "PodMonitor" }).discovered, true);
  });
});
