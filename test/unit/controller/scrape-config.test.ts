import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  kubernetesScrapeJob,
  scrapePortName,
  staticScrapeJob,
} from "../../../controller/desired/scrape-config.ts";
import { desiredService } from "../../../controller/desired/service.ts";
import { coderMetrics, planFor } from "./fixtures.ts";

const podSelector = { "app.kubernetes.io/name": "coder" };

describe("scrape config for Prometheus without the Operator", () => {
  test("endpointslice discovery in the CR's namespace, keeping only the Service's scrape port", () => {
    const cr = coderMetrics({ monitor: { interval: "15s", scrapeTimeout: "10s" } });
    const job = kubernetesScrapeJob({ cr, spec: cr.spec }) as Record<string, unknown> & {
      relabel_configs: Array<Record<string, unknown>>;
    };
    assert.equal(job.job_name, "coder-prom");
    assert.equal(job.scrape_interval, "15s");
    assert.equal(job.scrape_timeout, "10s");
    assert.deepEqual(job.kubernetes_sd_configs, [
      { role: "endpointslice", namespaces: { names: ["coder"] } },
    ]);
    assert.deepEqual(job.relabel_configs.slice(0, 2), [
      { source_labels: ["__meta_kubernetes_service_name"], regex: "coder-prom", action: "keep" },
      {
        source_labels: ["__meta_kubernetes_endpointslice_port_name"],
        regex: "exporter-http",
        action: "keep",
      },
    ]);
    assert.deepEqual(job.relabel_configs.at(-1), {
      target_label: "job",
      replacement: "coder-prom",
    });
  });

  test("target Coderd (or exporter off) scrapes prom-http", () => {
    const cr = coderMetrics({ exporter: { enabled: false }, monitor: { target: "Coderd" } });
    assert.equal(scrapePortName(cr.spec), "prom-http");
  });

  test("static variant for a Prometheus outside the cluster", () => {
    const cr = coderMetrics();
    assert.deepEqual(
      staticScrapeJob({ cr, spec: cr.spec }, ["coder.example.com:30213"]).static_configs,
      [{ targets: ["coder.example.com:30213"], labels: { service: "coder-prom" } }],
    );
  });
});

describe("prometheus.io annotations", () => {
  const want = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "2113",
    "prometheus.io/path": "/metrics",
    "prometheus.io/scheme": "http",
  };

  test("on the Service, pointing at the exporter port, next to the user's own annotations", () => {
    const cr = coderMetrics({
      prometheusAnnotations: { service: true },
      service: { annotations: { team: "a" } },
    });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.deepEqual(svc.metadata?.annotations, { team: "a", ...want });
  });

  test("on coderd's pod template, pointing at coderd when the exporter is off", () => {
    const plan = planFor({
      prometheusAnnotations: { pods: true },
      exporter: { enabled: false },
      monitor: { target: "Coderd" },
    });
    assert.ok(plan.ok);
    assert.deepEqual(plan.apply.spec?.template.metadata?.annotations, {
      ...want,
      "prometheus.io/port": "2112",
    });
  });

  test("off by default: no annotations; the pod template carries only the instance label", () => {
    const cr = coderMetrics();
    const plan = planFor();
    assert.ok(plan.ok);
    assert.deepEqual(plan.apply.spec?.template.metadata, {
      labels: { "coder-metrics.io/instance": "coder" },
    });
    assert.equal(
      desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 }).metadata?.annotations,
      undefined,
    );
  });
});
