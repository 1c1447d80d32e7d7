import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { desiredMonitor } from "../../../controller/desired/monitor.ts";
import { commonPodSelector, desiredService } from "../../../controller/desired/service.ts";
import { matchesSelector } from "../../../controller/discovery/label-selector.ts";
import { coderMetrics } from "./fixtures.ts";

const podSelector = { "app.kubernetes.io/name": "coder", "app.kubernetes.io/instance": "coder" };

describe("desiredService", () => {
  test("headless, prom-http on coderd's port, the exporter's port, selecting coderd's pods", () => {
    const cr = coderMetrics({ service: { labels: { team: "platform" }, annotations: { a: "b" } } });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.equal(svc.metadata?.name, "coder-prom");
    assert.equal(svc.spec?.clusterIP, "None");
    assert.deepEqual(svc.spec?.selector, podSelector);
    assert.deepEqual(svc.spec?.ports, [
      { name: "prom-http", port: 2112, targetPort: 2112, protocol: "TCP" },
      { name: "exporter-http", port: 2113, targetPort: 2113, protocol: "TCP" },
    ]);
    assert.equal(svc.metadata?.labels?.team, "platform");
    assert.equal(svc.metadata?.labels?.["coder-metrics.io/instance"], "coder");
    assert.deepEqual(svc.metadata?.annotations, { a: "b" });
    assert.equal(svc.metadata?.ownerReferences?.[0]?.uid, "uid-1");
    assert.equal(svc.metadata?.ownerReferences?.[0]?.controller, true);
  });

  test("our labels win over user labels of the same key (the ServiceMonitor selects on them)", () => {
    const cr = coderMetrics({ service: { labels: { "coder-metrics.io/instance": "other" } } });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.equal(svc.metadata?.labels?.["coder-metrics.io/instance"], "coder");
  });

  test("without the exporter only prom-http is exposed", () => {
    const cr = coderMetrics({ exporter: { enabled: false }, monitor: { target: "Coderd" } });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.deepEqual(
      svc.spec?.ports?.map((p) => p.name),
      ["prom-http"],
    );
  });

  test("commonPodSelector keeps only what every Deployment shares", () => {
    assert.deepEqual(
      commonPodSelector([
        podSelector,
        { "app.kubernetes.io/name": "coder", "app.kubernetes.io/instance": "coder-2" },
      ]),
      {
        "app.kubernetes.io/name": "coder",
      },
    );
    assert.deepEqual(commonPodSelector([{ a: "1" }, { b: "2" }]), {});
    assert.deepEqual(commonPodSelector([]), {});
  });
});

describe("desiredMonitor", () => {
  test("the ServiceMonitor selects the Service by its labels and names its port (the docs' bug, fixed)", () => {
    const cr = coderMetrics({
      monitor: { labels: { release: "kube-prometheus-stack" }, scrapeTimeout: "10s" },
    });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    const sm = desiredMonitor({
      cr,
      spec: cr.spec,
      kind: "ServiceMonitor",
      podSelector,
      coderPort: 2112,
    });
    assert.equal(sm.kind, "ServiceMonitor");
    assert.equal(sm.metadata.labels.release, "kube-prometheus-stack");
    const selector = sm.spec.selector as { matchLabels: Record<string, string> };
    assert.ok(
      matchesSelector(selector, svc.metadata?.labels),
      "selector matches the Service's labels",
    );
    assert.deepEqual(sm.spec.namespaceSelector, { matchNames: ["coder"] });
    const [endpoint] = sm.spec.endpoints as Array<Record<string, unknown>>;
    assert.ok(
      svc.spec?.ports?.some((p) => p.name === endpoint?.port),
      "endpoint port is a port name of the Service",
    );
    assert.deepEqual(endpoint, {
      port: "exporter-http",
      path: "/metrics",
      interval: "30s",
      scrapeTimeout: "10s",
      honorLabels: false,
    });
  });

  test("target Coderd scrapes prom-http", () => {
    const cr = coderMetrics({ monitor: { target: "Coderd" } });
    const sm = desiredMonitor({
      cr,
      spec: cr.spec,
      kind: "ServiceMonitor",
      podSelector,
      coderPort: 2112,
    });
    assert.equal((sm.spec.endpoints as Array<{ port: string }>)[0]?.port, "prom-http");
  });

  test("a PodMonitor selects coderd's pods", () => {
    const cr = coderMetrics({ monitor: { mode: "PodMonitor", target: "Coderd" } });
    const pm = desiredMonitor({
      cr,
      spec: cr.spec,
      kind: "PodMonitor",
      podSelector,
      coderPort: 2112,
    });
    assert.deepEqual(pm.spec.selector, { matchLabels: podSelector });
    assert.equal(
      (pm.spec.podMetricsEndpoints as Array<{ portNumber: number }>)[0]?.portNumber,
      2112,
    );
  });
});
