// Prometheus without the Operator finds Coder through what coder-metrics
// generates: the scrape_config job (endpointslice discovery) from status and
// the `scrape-config` CLI, and the prometheus.io annotations that the
// prometheus-community chart's kubernetes-service-endpoints job reads. A real
// Prometheus with kubernetes_sd pointed at the test API server must report
// the target up. (No kube-controller-manager here, so the test writes the
// EndpointSlice and Endpoints its controllers would, for a pod that is a
// network namespace of the test's own.)
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import type * as k8s from "@kubernetes/client-node";
import { parse } from "yaml";
import { startController } from "../../support/controller.ts";
import { installCoderMetricsCrd } from "../../support/crds.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";
import {
  promtoolCheckConfig,
  type RunningPrometheus,
  startPrometheus,
} from "../../support/prometheus.ts";
import { createTestHost, type TestHost } from "../../support/test-host.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";

const clients = testClients();
const cli = resolve(import.meta.dirname, "../../../controller/cli.ts");
const standinScript = resolve(import.meta.dirname, "../../support/coder-standin.ts");
// coderd's pod: a test host of our own (Kubernetes refuses loopback endpoint addresses).
let host: TestHost;
let podIp: string;
let standin: ChildProcess | undefined;
let prometheus: RunningPrometheus | undefined;

before(async () => {
  await installCoderMetricsCrd(clients);
  host = createTestHost();
  podIp = host.address;
  standin = host.spawn(
    process.execPath,
    [standinScript, "--address", `${podIp}:2113`, "--workspaces", "5"],
    { stdio: "ignore" },
  );
  await eventually("the Coder stand-in in the test host", async () => {
    const r = await fetch(`http://${podIp}:2113/metrics`).catch(() => undefined);
    return r?.ok ? true : undefined;
  });
});
after(async () => {
  await prometheus?.stop();
  standin?.kill();
  host?.close();
});

type Cr = k8s.KubernetesObject & { status?: { scrapeConfig?: string } };

test("the generated scrape_config and the prometheus.io annotations both find coder in a real Prometheus", async (t) => {
  const namespace = await freshNamespace(t, clients);
  await startController(t, [namespace]);
  const labels = { "app.kubernetes.io/name": "coder" };
  await createCoderDeployment(clients, namespace, { labels });
  const cr = {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
    spec: {
      monitor: { mode: "Disabled", interval: "1s" },
      prometheusAnnotations: { service: true },
    },
  };
  await clients.objects.create(cr);
  const scrapeConfig = await eventually(
    "status.scrapeConfig",
    async () => (await clients.objects.read<Cr>(cr)).status?.scrapeConfig,
  );
  await eventually("the Service", () =>
    clients.core.readNamespacedService({ name: "coder-prom", namespace }),
  );

  // What the EndpointSlice and Endpoints controllers would write for the coderd pod.
  const ports = [
    { name: "prom-http", port: 2112, protocol: "TCP" },
    { name: "exporter-http", port: 2113, protocol: "TCP" },
  ];
  const podRef = { kind: "Pod", name: "coder-0", namespace };
  await clients.objects.create({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: "coder-prom-test",
      namespace,
      labels: { "kubernetes.io/service-name": "coder-prom" },
    },
    addressType: "IPv4",
    endpoints: [{ addresses: [podIp], conditions: { ready: true }, targetRef: podRef }],
    ports,
  } as k8s.KubernetesObject);
  await clients.core.createNamespacedEndpoints({
    namespace,
    body: {
      metadata: { name: "coder-prom" },
      subsets: [{ addresses: [{ ip: podIp, targetRef: podRef }], ports }],
    },
  });

  // promtool accepts the job as generated, and the static variant.
  promtoolCheckConfig(parse(scrapeConfig) as Record<string, unknown>);
  promtoolCheckConfig(
    parse(
      execFileSync(
        process.execPath,
        [cli, "scrape-config", "-f", "-", "--static", "coder.example.com:30213"],
        { input: JSON.stringify(cr), encoding: "utf8" },
      ),
    ) as Record<string, unknown>,
  );

  // The CLI prints the same job as the status.
  const crFile = join(await import("node:os").then((os) => os.tmpdir()), `cr-${namespace}.yaml`);
  writeFileSync(crFile, JSON.stringify(cr));
  const fromCli = execFileSync(process.execPath, [cli, "scrape-config", "-f", crFile], {
    encoding: "utf8",
  });
  assert.equal(fromCli, scrapeConfig);

  const kubeconfig = clients.config.getCurrentCluster() ? process.env.KUBECONFIG : undefined;
  assert.ok(kubeconfig, "KUBECONFIG points at the test cluster");
  const generated = (
    parse(scrapeConfig) as {
      scrape_configs: Array<
        Record<string, unknown> & { kubernetes_sd_configs: Array<Record<string, unknown>> }
      >;
    }
  ).scrape_configs[0]!;
  generated.kubernetes_sd_configs[0]!.kubeconfig_file = kubeconfig;
  // The prometheus-community chart's annotation job, in its essentials.
  const annotationJob = {
    job_name: "kubernetes-service-endpoints",
    scrape_interval: "1s",
    kubernetes_sd_configs: [
      { role: "endpoints", kubeconfig_file: kubeconfig, namespaces: { names: [namespace] } },
    ],
    relabel_configs: [
      {
        source_labels: ["__meta_kubernetes_service_annotation_prometheus_io_scrape"],
        action: "keep",
        regex: "true",
      },
      {
        source_labels: ["__meta_kubernetes_service_annotation_prometheus_io_scheme"],
        action: "replace",
        target_label: "__scheme__",
        regex: "(https?)",
      },
      {
        source_labels: ["__meta_kubernetes_service_annotation_prometheus_io_path"],
        action: "replace",
        target_label: "__metrics_path__",
        regex: "(.+)",
      },
      {
        source_labels: ["__address__", "__meta_kubernetes_service_annotation_prometheus_io_port"],
        action: "replace",
        target_label: "__address__",
        regex: "(.+?)(?::\\d+)?;(\\d+)",
        replacement: "$1:$2",
      },
      { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
      { source_labels: ["__meta_kubernetes_service_name"], target_label: "service" },
    ],
  };
  prometheus = await startPrometheus({
    global: { scrape_interval: "1s" },
    scrape_configs: [generated, annotationJob],
  });
  const targets = await eventually(
    "both jobs' targets up",
    async () => {
      const all = await prometheus!.targets();
      const up = (job: string) => all.find((x) => x.labels.job === job && x.health === "up");
      return up("coder-prom") && up("kubernetes-service-endpoints") ? all : undefined;
    },
    { timeoutMs: 60_000 },
  );
  const generatedTargets = targets.filter((x) => x.labels.job === "coder-prom");
  assert.equal(generatedTargets.length, 1, "only the exporter-http port is kept");
  assert.equal(generatedTargets[0]?.labels.instance, `${podIp}:2113`);
  assert.equal(generatedTargets[0]?.labels.namespace, namespace);
  assert.equal(generatedTargets[0]?.labels.service, "coder-prom");
  assert.equal(generatedTargets[0]?.labels.endpoint, "exporter-http");
  const annotated = targets.filter((x) => x.labels.job === "kubernetes-service-endpoints");
  assert.ok(
    annotated.every((x) => x.labels.instance === `${podIp}:2113`),
    "the annotation's port wins",
  );

  const series = await eventually("Coder's metrics in Prometheus", async () => {
    const r = await prometheus!.query(
      `coderd_api_workspace_latest_build{job="coder-prom",namespace="${namespace}"}`,
    );
    return r.length > 0 ? r : undefined;
  });
  assert.ok(series.length > 0);
});
