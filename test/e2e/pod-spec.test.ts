// The process kubelet's pure part: what it runs for a container, and how a
// Pod spec's addresses, paths and variables become a local command line.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { exporterContainer } from "../../controller/desired/coderd.ts";
import { resolveSpec } from "../../controller/api/defaults.ts";
import { expandVars, mapMountPaths, mapPodAddress, planContainer, resolveEnv } from "./pod-spec.ts";

const ip = "198.18.7.3";
const loopback = "127.18.7.3";
const pod: V1Pod = {
  metadata: { name: "coder-0", namespace: "coder", uid: "u1", labels: { app: "coder" } },
  spec: { containers: [], serviceAccountName: "coder" },
};

function plan(container: V1Container, extra: Partial<Parameters<typeof planContainer>[0]> = {}) {
  return planContainer({
    pod,
    container,
    podIp: ip,
    env: resolveEnv(pod, container, ip, "node-1"),
    mounts: [{ mountPath: "/etc/coder-metrics", dir: "/tmp/vol/cfg" }],
    node: "node-1",
    repoRoot: "/repo",
    coderWorkspaces: 5,
    ...extra,
  });
}

describe("process kubelet: pod spec → process", () => {
  const addresses: Array<[string, string]> = [
    ["--listen=0.0.0.0:2113", `--listen=${ip}:2113`],
    ["--upstream=http://127.0.0.1:2112/metrics", `--upstream=http://${loopback}:2112/metrics`],
    ["localhost:8080", `${loopback}:8080`],
    ["[::1]:8080", `${loopback}:8080`],
    ["--metrics-address=:8080", `--metrics-address=${ip}:8080`],
    ["[::]:2112", `${ip}:2112`],
    [
      "--upstream=http://coder.example.com:2112/metrics",
      "--upstream=http://coder.example.com:2112/metrics",
    ],
    ["--workers=2", "--workers=2"],
  ];
  for (const [input, want] of addresses) {
    test(`address ${input}`, () => assert.equal(mapPodAddress(input, ip), want));
  }

  test("mount paths map into the volume folder, longest mount first", () => {
    const mounts = [
      { mountPath: "/etc/a", dir: "/v/a" },
      { mountPath: "/etc/a/b", dir: "/v/b" },
    ];
    assert.equal(mapMountPaths("--config=/etc/a/b/x.yaml", mounts), "--config=/v/b/x.yaml");
    assert.equal(mapMountPaths("--config=/etc/a/x.yaml", mounts), "--config=/v/a/x.yaml");
    assert.equal(mapMountPaths("--config=/etc/ab/x.yaml", mounts), "--config=/etc/ab/x.yaml");
  });

  test("$(VAR) expansion as Kubernetes does it", () => {
    assert.equal(expandVars("--ns=$(POD_NAMESPACE)", { POD_NAMESPACE: "coder" }), "--ns=coder");
    assert.equal(expandVars("$(MISSING) $$(X)", {}), "$(MISSING) $(X)");
  });

  test("fieldRef env resolves from the pod", () => {
    const env = resolveEnv(
      pod,
      {
        name: "c",
        env: [
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: "WHO", value: "$(POD_NAME)@$(POD_IP)" },
        ],
      },
      ip,
      "node-1",
    );
    assert.deepEqual(env, { POD_NAME: "coder-0", POD_IP: ip, APP: "coder", WHO: `coder-0@${ip}` });
  });

  test("the injected exporter sidecar runs this project's exporter with mapped addresses and config path", () => {
    const spec = resolveSpec({});
    const sidecar = exporterContainer(spec, "ghcr.io/coder-metrics/coder-metrics:0.1.0", {
      host: "0.0.0.0",
      port: 2112,
    });
    const p = plan(sidecar);
    assert.ok(p.ok);
    assert.equal(p.kind, "exporter");
    assert.deepEqual(p.process.args, [
      "/repo/controller/cli.ts",
      "exporter",
      `--upstream=http://${loopback}:2112/metrics`,
      `--listen=${ip}:2113`,
      "--config=/tmp/vol/cfg/exporter.yaml",
    ]);
  });

  test("coderd runs as the stand-in, which serves metrics only when the env enables them", () => {
    const p = plan({
      name: "coder",
      image: "ghcr.io/coder/coder:v2.24.1",
      env: [
        { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
        { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:2112" },
      ],
    });
    assert.ok(p.ok);
    assert.equal(p.kind, "coderd");
    assert.ok(p.process.args.includes("--require-env"));
    assert.equal(p.process.env.CODER_PROMETHEUS_ADDRESS, `${ip}:2112`);
    assert.equal(p.process.env.CODER_PROMETHEUS_ENABLE, "true");
    // Every interface includes the Pod's loopback, where the sidecar scrapes it.
    assert.deepEqual(p.process.args.slice(p.process.args.indexOf("--also-address"), -4), [
      "--also-address",
      `${loopback}:2112`,
    ]);
  });

  test("coderd on loopback (pii) is reachable from its Pod only: the Pod's loopback, not the Pod IP", () => {
    const p = plan({
      name: "coder",
      image: "ghcr.io/coder/coder:v2.24.1",
      env: [
        { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
        { name: "CODER_PROMETHEUS_ADDRESS", value: "127.0.0.1:2112" },
      ],
    });
    assert.ok(p.ok);
    assert.equal(p.process.env.CODER_PROMETHEUS_ADDRESS, `${loopback}:2112`);
    assert.equal(p.process.args.includes("--also-address"), false);
  });

  test("the controller gets the ServiceAccount kubeconfig; without one it waits", () => {
    const container = {
      name: "controller",
      image: "ghcr.io/coder-metrics/coder-metrics:0.1.0",
      args: ["controller", "--metrics-address=0.0.0.0:8080"],
    };
    const p = plan(container, { kubeconfigPath: "/tmp/kc" });
    assert.ok(p.ok);
    assert.equal(p.process.env.KUBECONFIG, "/tmp/kc");
    assert.ok(p.process.args.includes(`--metrics-address=${ip}:8080`));
    const without = plan(container);
    assert.ok(!without.ok);
    assert.equal(without.reason, "NoCredentials");
  });

  test("any other image is not run, with a reason", () => {
    const p = plan({ name: "prometheus", image: "quay.io/prometheus/prometheus:v3.5.0" });
    assert.ok(!p.ok);
    assert.equal(p.reason, "ImageNotSupported");
    assert.match(p.message, /quay\.io\/prometheus\/prometheus/);
  });
});
