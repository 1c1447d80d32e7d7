// The process kubelet's pure part: what it runs for a container, and how a
// Pod spec's addresses, paths and variables become a local command line.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { exporterContainer } from "../../controller/desired/coderd.ts";
import { resolveSpec } from "../../controller/api/defaults.ts";
import {
  containerSecurity,
  expandVars,
  localImageRef,
  mapMountPaths,
  mapPodAddress,
  planContainer,
  podmanRunArgs,
  resolveEnv,
} from "./pod-spec.ts";

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
    assert.ok(p.ok && p.process);
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
    assert.ok(p.ok && p.process);
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
    assert.ok(p.ok && p.process);
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
    assert.ok(p.ok && p.process);
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

describe("process kubelet: pod spec → podman run (the built image)", () => {
  const spec = resolveSpec({});
  const sidecar = exporterContainer(spec, "ghcr.io/coder-metrics/coder-metrics:0.1.0", {
    host: "0.0.0.0",
    port: 2112,
  });
  const image = { found: true as const, ref: "localhost/coder-metrics:0.1.0", user: "65532:65532" };
  const serviceEnv = { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: "6443" };
  const inPodman = (
    container: V1Container,
    extra: Partial<Parameters<typeof planContainer>[0]> = {},
  ) =>
    plan(container, {
      runtime: "podman",
      localImage: image,
      serviceEnv,
      mounts: [
        { mountPath: "/etc/coder-metrics", dir: "/tmp/vol/cfg", readOnly: true },
        {
          mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
          dir: "/tmp/vol/no-token",
          readOnly: true,
        },
      ],
      ...extra,
    });

  test("the chart's image runs as the locally built one, same tag; a digest has no local build", () => {
    const local = { "ghcr.io/coder-metrics/coder-metrics": "localhost/coder-metrics" };
    assert.equal(
      localImageRef("ghcr.io/coder-metrics/coder-metrics:0.1.0", local),
      "localhost/coder-metrics:0.1.0",
    );
    assert.equal(
      localImageRef("ghcr.io/coder-metrics/coder-metrics", local),
      "localhost/coder-metrics:latest",
    );
    assert.equal(localImageRef("ghcr.io/coder-metrics/coder-metrics@sha256:ab", local), undefined);
    assert.equal(localImageRef("ghcr.io/other/coder-metrics:0.1.0", local), undefined);
  });

  test("the sidecar runs from the image as its Pod spec says: entrypoint, uid, read-only root, env, volumes", () => {
    const p = inPodman(sidecar);
    assert.ok(p.ok && p.container);
    assert.equal(p.kind, "exporter");
    const run = p.container;
    assert.equal(run.image, "localhost/coder-metrics:0.1.0");
    assert.equal(
      run.entrypoint,
      undefined,
      "the image's ENTRYPOINT: node /app/dist/controller/cli.js",
    );
    // Paths stay the Pod's (the volume is mounted there); addresses become the Pod's own.
    assert.deepEqual(run.args, [
      "exporter",
      `--upstream=http://${loopback}:2112/metrics`,
      `--listen=${ip}:2113`,
      "--config=/etc/coder-metrics/exporter.yaml",
    ]);
    assert.equal(run.user, "65532:65532");
    assert.equal(run.readOnlyRootFilesystem, true);
    assert.equal(run.noNewPrivileges, true);
    assert.deepEqual(run.capDrop, ["ALL"]);
    assert.match(run.env.NODE_OPTIONS ?? "", /--max-old-space-size=/, "the injected NODE_OPTIONS");
    assert.equal(run.env.KUBERNETES_SERVICE_HOST, "127.0.0.1");
    assert.equal(run.env.PATH, undefined, "the image's PATH, not this machine's");
    assert.equal(run.hostname, "coder-0");
    assert.deepEqual(run.mounts, [
      { source: "/tmp/vol/cfg", destination: "/etc/coder-metrics", readOnly: true },
      {
        source: "/tmp/vol/no-token",
        destination: "/var/run/secrets/kubernetes.io/serviceaccount",
        readOnly: true,
      },
    ]);

    const args = podmanRunArgs(run, {
      name: "k8s_x",
      cidfile: "/tmp/x.cid",
      labels: { "io.coder-metrics.process-kubelet": "run-1" },
    });
    for (const flag of [
      "--rm",
      "--pull=never",
      "--network=host",
      "--user=65532:65532",
      "--read-only",
      "--read-only-tmpfs=false",
      "--security-opt=no-new-privileges",
      "--cap-drop=ALL",
      "--label=io.coder-metrics.process-kubelet=run-1",
      "--mount=type=bind,source=/tmp/vol/cfg,destination=/etc/coder-metrics,ro=true",
    ])
      assert.ok(args.includes(flag), `${flag} in ${args.join(" ")}`);
    assert.ok(!args.some((a) => a.startsWith("--network=") && a !== "--network=host"));
    // The image and the args come last, in order.
    assert.deepEqual(args.slice(-5), ["localhost/coder-metrics:0.1.0", ...run.args]);
  });

  test("the controller from the image: its args, no kubeconfig (the projected token is its credential)", () => {
    const p = inPodman({
      name: "controller",
      image: "ghcr.io/coder-metrics/coder-metrics:0.1.0",
      args: ["controller", "--metrics-address=0.0.0.0:8080"],
      resources: { limits: { memory: "384Mi", cpu: "500m" } },
    });
    assert.ok(p.ok && p.container);
    assert.equal(p.kind, "controller");
    assert.deepEqual(p.container.args, ["controller", `--metrics-address=${ip}:8080`]);
    assert.equal(p.container.env.KUBECONFIG, undefined);
    assert.equal(p.container.memoryBytes, 384 * 2 ** 20);
    assert.equal(p.container.cpus, 0.5);
    assert.equal(p.container.user, undefined, "no securityContext: the image's USER");
  });

  test("a run that pinned the image's id runs that id, whatever the name points to by then", () => {
    const p = inPodman(sidecar, {
      localImage: {
        ...image,
        id: "ca35d033635d8251322ccc5b179e4e2bac9ec614dc3a5d1c213f10ed5678b7dd",
      },
    });
    assert.ok(p.ok && p.container);
    assert.equal(
      p.container.image,
      "ca35d033635d8251322ccc5b179e4e2bac9ec614dc3a5d1c213f10ed5678b7dd",
    );
    assert.equal(p.container.imageName, "localhost/coder-metrics:0.1.0");
  });

  test("an image not built locally waits, never pulled", () => {
    const p = inPodman(sidecar, {
      localImage: { found: false, ref: "localhost/coder-metrics:0.1.0" },
    });
    assert.ok(!p.ok);
    assert.equal(p.reason, "ErrImageNeverPull");
    assert.match(p.message, /make image/);
  });

  test("runAsNonRoot is checked against the uid it would run as", () => {
    const nonRoot = { runAsNonRoot: true };
    const c = (securityContext: V1Container["securityContext"]) => ({
      name: "c",
      image: "x",
      securityContext,
    });
    assert.ok(containerSecurity(pod, c(nonRoot), "65532:65532").ok);
    const root = containerSecurity(pod, c({ ...nonRoot, runAsUser: 0 }), "65532");
    assert.ok(!root.ok && /will run as root/.test(root.message));
    const named = containerSecurity(pod, c(nonRoot), "node");
    assert.ok(!named.ok && /non-numeric user/.test(named.message));
    const podLevel = containerSecurity(
      { ...pod, spec: { containers: [], securityContext: { runAsUser: 1000, runAsGroup: 2000 } } },
      c({ runAsUser: 3000 }),
      "",
    );
    assert.ok(podLevel.ok);
    assert.equal(podLevel.user, "3000:2000", "the container's uid over the Pod's, the Pod's gid");
  });
});
