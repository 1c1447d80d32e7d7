// The doctor's checks as pure functions: one healthy snapshot, then each link
// of the chain broken the way users break it, and what the doctor says.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Deployment, V1Pod, V1Service } from "@kubernetes/client-node";
import {
  type CheckId,
  type CheckResult,
  exitCode,
  formatReport,
  runChecks,
  type Snapshot,
} from "../../../controller/doctor/checks.ts";

const ns = "coder";
const podLabels = { "app.kubernetes.io/name": "coder", "app.kubernetes.io/instance": "coder" };
const ownedLabels = {
  "app.kubernetes.io/managed-by": "coder-metrics",
  "coder-metrics.io/instance": "coder",
};

function deployment(env: Array<{ name: string; value: string }>, sidecar = true): V1Deployment {
  return {
    metadata: { name: "coder", namespace: ns, labels: podLabels, generation: 2 },
    spec: {
      replicas: 1,
      selector: { matchLabels: podLabels },
      template: {
        metadata: { labels: podLabels },
        spec: {
          containers: [
            { name: "coder", image: "ghcr.io/coder/coder:v2.24.1", env },
            ...(sidecar
              ? [
                  {
                    name: "coder-metrics-exporter",
                    image: "ghcr.io/coder-metrics/coder-metrics:0.1.0",
                  },
                ]
              : []),
          ],
        },
      },
    },
    status: {
      observedGeneration: 2,
      replicas: 1,
      updatedReplicas: 1,
      availableReplicas: 1,
      readyReplicas: 1,
    },
  };
}

const enabledEnv = [
  { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
  { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:2112" },
];

function pod(env = enabledEnv): V1Pod {
  const d = deployment(env);
  return {
    metadata: { name: "coder-abc", namespace: ns, labels: podLabels },
    spec: d.spec?.template.spec ?? { containers: [] },
  };
}

const service: V1Service = {
  metadata: { name: "coder-prom", namespace: ns, labels: ownedLabels },
  spec: {
    clusterIP: "None",
    selector: podLabels,
    ports: [
      { name: "prom-http", port: 2112 },
      { name: "exporter-http", port: 2113 },
    ],
  },
};

function healthy(): Snapshot {
  return {
    namespace: ns,
    name: "coder",
    cr: {
      metadata: { generation: 1 },
      spec: { monitor: { labels: { release: "kube-prometheus-stack" } } },
      status: {
        observedGeneration: 1,
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "Reconciled",
            message: "",
            lastTransitionTime: "2026-01-01T00:00:00Z",
          },
        ],
      },
    },
    deployments: [deployment(enabledEnv)],
    pods: [pod()],
    service,
    endpointSlices: [
      {
        metadata: { name: "coder-prom-x", labels: { "kubernetes.io/service-name": "coder-prom" } },
        endpoints: [{ addresses: ["10.0.0.7"], conditions: { ready: true } }],
        ports: [
          { name: "prom-http", port: 2112 },
          { name: "exporter-http", port: 2113 },
        ],
      },
    ],
    monitor: {
      kind: "ServiceMonitor",
      name: "coder-prom",
      labels: { ...ownedLabels, release: "kube-prometheus-stack" },
      selector: { matchLabels: ownedLabels },
      namespaceSelector: { matchNames: [ns] },
      endpointPorts: ["exporter-http"],
    },
    monitoringServed: true,
    prometheuses: [
      {
        kind: "Prometheus",
        namespace: "monitoring",
        name: "kube-prometheus-stack",
        serviceMonitorSelector: { matchLabels: { release: "kube-prometheus-stack" } },
        serviceMonitorNamespaceSelector: {},
      },
    ],
    namespaceLabels: {},
  };
}

function byId(results: CheckResult[], id: CheckId): CheckResult {
  const r = results.find((x) => x.id === id);
  assert.ok(r, `check ${id}`);
  return r;
}

describe("doctor checks", () => {
  test("a healthy chain passes every step (the target is skipped without --prometheus-url)", () => {
    const results = runChecks(healthy());
    assert.deepEqual(
      results.map((r) => [r.id, r.status]),
      [
        ["cr", "pass"],
        ["deployment", "pass"],
        ["coderd", "pass"],
        ["service", "pass"],
        ["monitor", "pass"],
        ["prometheus", "pass"],
        ["target", "skip"],
        ["pii", "skip"],
      ],
    );
    assert.equal(exitCode(results), 0);
  });

  const broken: Array<{
    name: string;
    id: CheckId;
    change: (s: Snapshot) => void;
    detail: RegExp;
    fix?: RegExp;
  }> = [
    {
      name: "CR missing",
      id: "cr",
      change: (s) => (s.cr = undefined),
      detail: /not found/,
      fix: /kubectl apply/,
    },
    {
      name: "CR never processed (no controller)",
      id: "cr",
      change: (s) => {
        if (s.cr) s.cr.status = undefined;
      },
      detail: /no controller has processed it/,
      fix: /controller running/,
    },
    {
      name: "selector matches nothing",
      id: "deployment",
      change: (s) => {
        s.deployments[0]!.metadata!.labels = { app: "coder" };
      },
      detail: /no Deployment in coder matches spec\.selector.*app=coder/,
      fix: /spec\.selector/,
    },
    {
      name: "coderd env missing",
      id: "coderd",
      change: (s) => {
        s.deployments = [deployment([])];
      },
      detail: /CODER_PROMETHEUS_ENABLE is not set/,
    },
    {
      name: "rollout unfinished",
      id: "coderd",
      change: (s) => {
        s.deployments[0]!.status = {
          observedGeneration: 2,
          replicas: 2,
          updatedReplicas: 1,
          availableReplicas: 0,
        };
      },
      detail: /rollout not finished.*kubectl rollout status/,
    },
    {
      name: "no ready endpoints",
      id: "service",
      change: (s) => {
        s.endpointSlices[0]!.endpoints = [
          { addresses: ["10.0.0.7"], conditions: { ready: false } },
        ];
      },
      detail: /endpoints 10\.0\.0\.7 are not ready/,
    },
    {
      name: "Service missing",
      id: "service",
      change: (s) => (s.service = undefined),
      detail: /Service coder\/coder-prom not found/,
    },
    {
      name: "ServiceMonitor port does not match the Service (the Coder docs' bug)",
      id: "monitor",
      change: (s) => {
        s.monitor!.endpointPorts = ["prometheus-http"];
      },
      detail: /scrapes port\(s\) prometheus-http, the Service's is exporter-http/,
    },
    {
      name: "Operator not installed",
      id: "monitor",
      change: (s) => {
        s.monitoringServed = false;
        s.monitor = undefined;
      },
      detail: /not served/,
      fix: /scrapeConfig/,
    },
    {
      name: "no Prometheus selects the release-less ServiceMonitor",
      id: "prometheus",
      change: (s) => {
        s.monitor!.labels = { ...ownedLabels };
      },
      detail: /requires release=kube-prometheus-stack/,
      fix: /spec\.monitor\.labels/,
    },
    {
      name: "target down",
      id: "target",
      change: (s) => {
        s.targets = [
          {
            labels: { namespace: ns, service: "coder-prom" },
            health: "down",
            lastError: "connection refused",
            scrapeUrl: "http://10.0.0.7:2113/metrics",
          },
        ];
      },
      detail: /10\.0\.0\.7:2113\/metrics is down: connection refused/,
    },
    {
      name: "no target in Prometheus",
      id: "target",
      change: (s) => {
        s.targets = [];
      },
      detail: /no target for Service coder\/coder-prom/,
    },
  ];
  for (const c of broken) {
    test(`${c.name}: step ${c.id} fails with a fix`, () => {
      const s = healthy();
      c.change(s);
      const results = runChecks(s);
      const r = byId(results, c.id);
      assert.equal(r.status, "fail", JSON.stringify(r));
      assert.match(r.detail, c.detail);
      if (c.fix) assert.match(r.fix ?? "", c.fix);
      assert.equal(exitCode(results), 1);
    });
  }

  test("an up target passes", () => {
    const s = healthy();
    s.targets = [
      {
        labels: { namespace: ns, service: "coder-prom", job: "serviceMonitor/coder/coder-prom/0" },
        health: "up",
        lastError: "",
        scrapeUrl: "http://10.0.0.7:2113/metrics",
      },
    ];
    assert.equal(byId(runChecks(s), "target").status, "pass");
  });

  /** The pii-hashing example, configured as the controller does it. */
  function withPii(): Snapshot {
    const s = healthy();
    s.cr!.spec = {
      monitor: { labels: { release: "kube-prometheus-stack" } },
      exporter: { config: { pii: { hashLabels: ["username"] } } },
    };
    const loopbackEnv = [
      { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
      { name: "CODER_PROMETHEUS_ADDRESS", value: "127.0.0.1:2112" },
    ];
    s.deployments = [deployment(loopbackEnv)];
    s.pods = [pod(loopbackEnv)];
    s.service = {
      ...service,
      spec: { ...service.spec, ports: [{ name: "exporter-http", port: 2113 }] },
    };
    return s;
  }

  test("pii: coderd on loopback and only the exporter's port exposed passes", () => {
    const r = byId(runChecks(withPii()), "pii");
    assert.equal(r.status, "pass", r.detail);
    assert.match(r.detail, /loopback only \(coder\); the Service exposes exporter-http/);
  });

  const leaks: Array<{ name: string; change: (s: Snapshot) => void; detail: RegExp }> = [
    {
      name: "a user's own 0.0.0.0 address (kept under Respect)",
      change: (s) => {
        const env = [
          { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
          { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9100" },
        ];
        s.deployments = [deployment(env)];
      },
      detail:
        /Deployment coder: the coderd container sets CODER_PROMETHEUS_ADDRESS=0\.0\.0\.0:9100/,
    },
    {
      name: "a pod from before the rollout",
      change: (s) => {
        s.pods = [pod(enabledEnv)];
      },
      detail: /pod coder-abc: .*0\.0\.0\.0:2112/,
    },
    {
      name: "coderd's port on the Service",
      change: (s) => {
        s.service = service;
      },
      detail: /Service coder-prom exposes coderd's raw metrics as prom-http:2112/,
    },
    {
      name: "annotations pointing Prometheus at coderd",
      change: (s) => {
        s.service!.metadata = {
          ...s.service!.metadata,
          annotations: { "prometheus.io/port": "2112" },
        };
      },
      detail: /prometheus\.io\/port is 2112, not the exporter's 2113/,
    },
  ];
  for (const c of leaks) {
    test(`pii: ${c.name} fails the PII step`, () => {
      const s = withPii();
      c.change(s);
      const results = runChecks(s);
      const r = byId(results, "pii");
      assert.equal(r.status, "fail", JSON.stringify(r));
      assert.match(r.detail, c.detail);
      assert.match(r.fix ?? "", /PIIProtected/);
      assert.equal(exitCode(results), 1);
    });
  }

  test("without a CR, later steps are skipped rather than failed twice", () => {
    const s = healthy();
    s.cr = undefined;
    const statuses = runChecks(s).map((r) => r.status);
    assert.deepEqual(statuses.slice(0, 4), ["fail", "skip", "skip", "skip"]);
  });

  test("the report lists every step and the fix of failed ones", () => {
    const s = healthy();
    s.monitor!.labels = {};
    const text = formatReport(s, runChecks(s));
    assert.match(text, /^coder-metrics doctor: CoderMetrics coder\/coder$/m);
    assert.match(text, /^✓ 1\. CoderMetrics exists/m);
    assert.match(text, /^✗ 6\. a Prometheus selects the ServiceMonitor\n.*\n {5}fix: /m);
    assert.match(text, /1 check\(s\) failed\n$/);
  });
});
