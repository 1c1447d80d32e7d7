// The whole chain, as a user of kube-prometheus-stack would see it: the chart
// installs the controller (running as a Pod, with the chart's RBAC); a
// CoderMetrics finds the Coder Deployment, coderd starts serving metrics, the
// exporter sidecar transforms them, the Prometheus Operator turns our
// ServiceMonitor into scrape config, and a real Prometheus scrapes the
// transformed series. And the failure users hit most: a ServiceMonitor without
// the release label is never scraped, and the CR (and `doctor`) say why.
//
// Locally (make e2e) the stack comes from global-setup.ts and Prometheus runs
// the Operator's generated config; against a real cluster
// (USE_EXISTING_CLUSTER=true) the Prometheus assertions need E2E_PROMETHEUS_URL.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { connect } from "node:net";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import type * as k8s from "@kubernetes/client-node";
import type { V1Pod } from "@kubernetes/client-node";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { createCoderDeployment } from "../support/coder-deployment.ts";
import { eventually, freshNamespace, testClients } from "../support/kube.ts";
import { type PrometheusApi, prometheusApi } from "../support/prometheus.ts";
import { podLoopback } from "./pod-spec.ts";
import {
  kubePrometheusStackPrometheus,
  type OperatedPrometheus,
  startOperatedPrometheus,
} from "./operator.ts";
import {
  type ControllerRelease,
  coderMetrics,
  installController,
  sampleNames,
  scrape,
  waitForCondition,
  withDiagnostics,
} from "./support.ts";

const clients = testClients();
const local = process.env.E2E_LOCAL_STACK !== undefined;
const cli = resolve(import.meta.dirname, "../../controller/cli.ts");
const monitoringNamespace = "e2e-monitoring";
const prometheusName = "kube-prometheus-stack";

let controller: ControllerRelease | undefined;
let operated: OperatedPrometheus | undefined;
let prometheus: PrometheusApi | undefined;

before(async () => {
  if (local) {
    await clients.core
      .createNamespace({ body: { metadata: { name: monitoringNamespace } } })
      .catch(() => undefined);
    await clients.objects.create(
      kubePrometheusStackPrometheus(monitoringNamespace, prometheusName) as never,
    );
  }
  // E2E_INSTALL_CHART=false: coder-metrics is already installed (cluster-wide) in that cluster.
  if (process.env.E2E_INSTALL_CHART !== "false") {
    controller = await installController(`cm-system-${Date.now().toString(36)}`);
  }
  if (local) {
    operated = await startOperatedPrometheus({
      kubeconfigPath: process.env.KUBECONFIG ?? "",
      namespace: monitoringNamespace,
      name: prometheusName,
    });
    prometheus = operated;
  } else if (process.env.E2E_PROMETHEUS_URL) {
    prometheus = prometheusApi(process.env.E2E_PROMETHEUS_URL);
  }
});

after(async () => {
  await operated?.stop();
  await controller?.uninstall();
});

async function coderPod(namespace: string): Promise<V1Pod> {
  return eventually(
    `a ready coder Pod in ${namespace} with the exporter sidecar`,
    async () => {
      const pods = await clients.core.listNamespacedPod({
        namespace,
        labelSelector: "app.kubernetes.io/name=coder",
      });
      return pods.items.find(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.spec?.containers.some((c) => c.name === "coder-metrics-exporter") &&
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      );
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

function doctor(args: string[]): { status: number; stdout: string } {
  const r = spawnSync(process.execPath, [cli, "doctor", ...args], {
    encoding: "utf8",
    timeout: 60_000,
    env: process.env,
  });
  return { status: r.status ?? -1, stdout: `${r.stdout}${r.stderr}` };
}

describe("kube-prometheus-stack discovers Coder through coder-metrics", () => {
  test(
    "selected ServiceMonitor: target up, transformed series in Prometheus, Discovered=True, doctor passes",
    withDiagnostics(async (t) => {
      const namespace = await freshNamespace(t, clients, "e2e-coder");
      await createCoderDeployment(clients, namespace);
      await clients.objects.create(
        coderMetrics(namespace, {
          monitor: { labels: { release: "kube-prometheus-stack" }, interval: "5s" },
          exporter: {
            config: {
              presets: ["drop_deprecated", "per_template"],
              metricRelabelings: [
                {
                  sourceLabels: ["__name__"],
                  regex: "coderd_api_total_user_count",
                  targetLabel: "__name__",
                  replacement: "coder_users",
                },
              ],
            },
          },
        }) as never,
      );

      const discovered = await waitForCondition(clients, namespace, "coder", "Discovered", "True");
      assert.match(
        discovered.message,
        local ? new RegExp(`selected by ${monitoringNamespace}/${prometheusName}`) : /selected by /,
      );
      await waitForCondition(clients, namespace, "coder", "Ready", "True");

      // The controller rolled coderd: its new Pod runs coderd with metrics on and the sidecar.
      const pod = await coderPod(namespace);
      const coderd = pod.spec?.containers.find((c) => c.name === "coder");
      assert.equal(coderd?.env?.find((e) => e.name === "CODER_PROMETHEUS_ENABLE")?.value, "true");
      const podIp = pod.status?.podIP;
      assert.ok(podIp);

      // What coderd serves, and what the exporter makes of it (reachable on this machine only).
      let raw: string | undefined;
      if (local) {
        raw = await eventually("coderd's metrics endpoint", () =>
          scrape(`http://${podIp}:2112/metrics`),
        );
        const names = sampleNames(raw);
        for (const name of [
          "coderd_api_total_user_count",
          "coderd_api_workspace_latest_build",
          "coderd_agents_up",
        ]) {
          assert.ok(names.has(name), `coderd serves ${name}`);
        }
        const exported = sampleNames(await scrape(`http://${podIp}:2113/metrics`));
        assert.ok(exported.has("coder_users") && !exported.has("coderd_api_total_user_count"));
      }

      if (prometheus === undefined) {
        t.diagnostic(
          "no Prometheus API (set E2E_PROMETHEUS_URL): skipping the Prometheus assertions",
        );
        return;
      }
      await operated?.waitForJob(`serviceMonitor/${namespace}/coder-prom/`);
      const target = await eventually(
        "the ServiceMonitor's target up in Prometheus",
        async () => {
          const targets = await prometheus!.targets();
          return targets.find(
            (x) =>
              x.labels.pod === pod.metadata?.name &&
              x.labels.namespace === namespace &&
              x.health === "up",
          );
        },
        { timeoutMs: 90_000, intervalMs: 1000 },
      );
      assert.equal(target.labels.service, "coder-prom");
      assert.equal(target.labels.endpoint, "exporter-http");
      assert.equal(target.scrapeUrl, `http://${podIp}:2113/metrics`);
      const up = await prometheus.query(`up{namespace="${namespace}",pod="${pod.metadata?.name}"}`);
      assert.deepEqual(
        up.map((s) => s.value[1]),
        ["1"],
      );

      // Renamed: only the new name exists.
      await eventually("the renamed series", async () => {
        const r = await prometheus!.query(`coder_users{namespace="${namespace}"}`);
        return r.length > 0 ? r : undefined;
      });
      assert.deepEqual(
        await prometheus.query(`coderd_api_total_user_count{namespace="${namespace}"}`),
        [],
      );
      // The stand-in serves Coder v2.35, which no longer has the deprecated
      // coderd_api_workspace_latest_build_total (removed in v2.30; drop_deprecated is
      // covered by the exporter's unit tests); its replacement is there.
      assert.ok(
        (await prometheus.query(`coderd_api_workspace_latest_build{namespace="${namespace}"}`))
          .length > 0,
      );
      // Aggregated (per_template): one series per template, no per-workspace labels.
      const agents = await prometheus.query(`coderd_agents_up{namespace="${namespace}"}`);
      assert.ok(agents.length > 0);
      for (const s of agents) {
        for (const label of ["workspace_name", "username", "template_version"]) {
          assert.equal(
            s.metric[label],
            undefined,
            `${label} aggregated away: ${JSON.stringify(s.metric)}`,
          );
        }
        assert.ok(s.metric.template_name, "template_name kept");
      }
      if (raw !== undefined) {
        const templates = new Set(
          raw
            .split("\n")
            .filter((l) => l.startsWith("coderd_agents_up{"))
            .map((l) => /template_name="([^"]*)"/.exec(l)?.[1]),
        );
        const workspaces = raw.split("\n").filter((l) => l.startsWith("coderd_agents_up{")).length;
        assert.equal(agents.length, templates.size, "one series per template");
        assert.ok(workspaces > templates.size, "coderd itself serves one per workspace");
      }

      // A config change reaches the running exporter through the ConfigMap: no restart, new series.
      const patched = await kubeFetch(
        clients.config,
        "PATCH",
        `/apis/coder-metrics.io/v1alpha1/namespaces/${namespace}/codermetrics/coder`,
        {
          body: {
            spec: {
              exporter: {
                config: {
                  presets: ["drop_deprecated", "per_template"],
                  metricRelabelings: [
                    {
                      sourceLabels: ["__name__"],
                      regex: "coderd_api_total_user_count",
                      targetLabel: "__name__",
                      replacement: "coder_user_count",
                    },
                  ],
                },
              },
            },
          },
          contentType: "application/merge-patch+json",
        },
      );
      assert.ok(patched.status < 300, JSON.stringify(patched.body));
      await eventually(
        "the renamed-again series in Prometheus",
        async () => {
          const r = await prometheus!.query(`coder_user_count{namespace="${namespace}"}`);
          return r.length > 0 ? r : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      );
      const same = await clients.core.readNamespacedPod({
        namespace,
        name: pod.metadata?.name ?? "",
      });
      assert.equal(same.metadata?.uid, pod.metadata?.uid, "the exporter reloaded in place");
      assert.equal(
        same.status?.containerStatuses?.find((c) => c.name === "coder-metrics-exporter")
          ?.restartCount,
        0,
      );

      // doctor walks the same chain and agrees.
      const report = doctor([
        "--namespace",
        namespace,
        "--name",
        "coder",
        "--prometheus-url",
        prometheus.url,
      ]);
      assert.equal(report.status, 0, report.stdout);
      assert.match(report.stdout, /✓ 7\. Prometheus scrapes the target/);
    }),
  );

  test(
    "pii: coderd refuses connections on the Pod IP, the exporter serves only hashed values, Prometheus scrapes it",
    withDiagnostics(async (t) => {
      const namespace = await freshNamespace(t, clients, "e2e-pii");
      await clients.core.createNamespacedSecret({
        namespace,
        body: {
          metadata: { name: "coder-metrics-hash-key" },
          stringData: { key: "e2e-hash-key-0123456789abcdef" },
        },
      });
      await createCoderDeployment(clients, namespace);
      await clients.objects.create(
        coderMetrics(namespace, {
          monitor: { labels: { release: "kube-prometheus-stack" }, interval: "5s" },
          // The Deployment is shaped like Coder's chart, which always sets a 0.0.0.0 address.
          coder: { existingSettings: "Override" },
          exporter: {
            config: {
              pii: {
                hashLabels: ["username", "workspace_owner"],
                dropLabels: ["owner_email", "email"],
                hashKeySecretRef: { name: "coder-metrics-hash-key", key: "key" },
              },
            },
          },
        }) as never,
      );
      await waitForCondition(clients, namespace, "coder", "Ready", "True");
      await waitForCondition(clients, namespace, "coder", "PIIProtected", "True");
      const pod = await coderPod(namespace);
      const podIp = pod.status?.podIP;
      assert.ok(podIp);
      const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
      assert.deepEqual(
        service.spec?.ports?.map((p) => p.name),
        ["exporter-http"],
      );

      const hashed = /^[0-9a-f]{16}$/;
      const values = (text: string, label: string) =>
        [...text.matchAll(new RegExp(`[{,]${label}="([^"]*)"`, "g"))].map((m) => m[1] ?? "");
      if (local) {
        // Nothing answers on coderd's port on the Pod IP: it listens on the Pod's loopback only.
        const refused = await new Promise<string>((resolve) => {
          const socket = connect({ host: podIp, port: 2112 });
          socket.once("connect", () => {
            socket.destroy();
            resolve("connected");
          });
          socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
        assert.equal(refused, "ECONNREFUSED", `coderd's port on the Pod IP ${podIp}`);

        // Inside the Pod (its loopback), coderd serves the raw names the exporter hashes.
        const raw = await eventually("coderd on the Pod's loopback", () =>
          scrape(`http://${podLoopback(podIp)}:2112/metrics`),
        );
        const owners = new Set(values(raw, "username"));
        assert.ok(owners.size > 0 && [...owners].every((o) => !hashed.test(o)), "raw names");
        const exported = await scrape(`http://${podIp}:2113/metrics`);
        const seen = [...values(exported, "username"), ...values(exported, "workspace_owner")];
        assert.ok(seen.length > 0, "the exporter keeps the labels, hashed");
        for (const v of seen) assert.match(v, hashed);
        for (const owner of owners)
          assert.ok(!exported.includes(`"${owner}"`), `${owner} is not in the exporter's output`);
        assert.deepEqual(values(exported, "owner_email"), [], "dropped");
      }

      if (prometheus === undefined) return;
      await operated?.waitForJob(`serviceMonitor/${namespace}/coder-prom/`);
      const target = await eventually(
        "the exporter's target up in Prometheus",
        async () =>
          (await prometheus!.targets()).find(
            (x) => x.labels.namespace === namespace && x.health === "up",
          ),
        { timeoutMs: 90_000, intervalMs: 1000 },
      );
      assert.equal(target.labels.endpoint, "exporter-http");
      const series = await eventually("series with a username in Prometheus", async () => {
        const r = await prometheus!.query(`{namespace="${namespace}",username!=""}`);
        return r.length > 0 ? r : undefined;
      });
      for (const s of series) assert.match(s.metric.username ?? "", hashed);
    }),
  );

  test(
    "ServiceMonitor without the release label: not scraped, Discovered=False NotSelected, doctor fails at that step",
    withDiagnostics(async (t) => {
      const namespace = await freshNamespace(t, clients, "e2e-unlabelled");
      await createCoderDeployment(clients, namespace);
      await clients.objects.create(
        coderMetrics(namespace, { monitor: { interval: "5s" } }) as never,
      );

      const discovered = await waitForCondition(clients, namespace, "coder", "Discovered", "False");
      assert.equal(discovered.reason, "NotSelected");
      assert.match(discovered.message, /release=kube-prometheus-stack/);
      assert.match(discovered.message, /spec\.monitor\.labels/);

      // Everything up to the ServiceMonitor works: the pod is ready and the Service has endpoints…
      const pod = await coderPod(namespace);
      await eventually("the Service's EndpointSlice to list the pod as ready", async () => {
        const slices = await clients.objects.list<
          k8s.KubernetesObject & {
            endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }>;
          }
        >(
          "discovery.k8s.io/v1",
          "EndpointSlice",
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          "kubernetes.io/service-name=coder-prom",
        );
        return slices.items.some((s) =>
          (s.endpoints ?? []).some(
            (e) => e.conditions?.ready && e.addresses.includes(pod.status?.podIP ?? ""),
          ),
        )
          ? true
          : undefined;
      });
      const monitor = await eventually("the ServiceMonitor", () =>
        clients.objects.read({
          apiVersion: "monitoring.coreos.com/v1",
          kind: "ServiceMonitor",
          metadata: { name: "coder-prom", namespace },
        }),
      );
      assert.equal(monitor.metadata?.labels?.release, undefined);

      // …and yet Prometheus never scrapes it.
      if (prometheus !== undefined) {
        // Several scrape intervals after the pod is ready, and after the Operator saw the
        // ServiceMonitor (it would have regenerated the config by now).
        await new Promise((r) => setTimeout(r, 12_000));
        const targets = await prometheus.targets();
        assert.deepEqual(
          targets.filter((x) => x.labels.namespace === namespace),
          [],
        );
        if (operated) {
          const jobs = ((operated.config.scrape_configs as Array<{ job_name: string }>) ?? []).map(
            (j) => j.job_name,
          );
          assert.ok(
            !jobs.some((j) => j.includes(namespace)),
            `no job for ${namespace}: ${jobs.join(", ")}`,
          );
        }
      }

      const report = doctor(["--namespace", namespace, "--name", "coder"]);
      assert.equal(report.status, 1, report.stdout);
      assert.match(report.stdout, /✓ 4\. the Service has ready endpoints/);
      assert.match(
        report.stdout,
        /✗ 6\. a Prometheus selects the ServiceMonitor\n.*release=kube-prometheus-stack/,
      );
    }),
  );
});

describe("the process kubelet", { skip: !local && "a real cluster's kubelet runs these" }, () => {
  test("a Pod whose images it cannot run stays not ready, saying why", async () => {
    // The Operator's Prometheus StatefulSet Pod (quay.io/prometheus/prometheus): not an image it runs.
    const pod = await eventually(
      "the Prometheus Pod to be reported",
      async () => {
        const p = await clients.core
          .readNamespacedPod({
            namespace: monitoringNamespace,
            name: `prometheus-${prometheusName}-0`,
          })
          .catch(() => undefined);
        return p?.status?.containerStatuses?.length ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(pod.spec?.nodeName, "process-kubelet", "bound through pods/binding");
    assert.equal(pod.status?.phase, "Pending");
    assert.equal(pod.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
    for (const c of pod.status?.containerStatuses ?? []) {
      assert.equal(c.state?.waiting?.reason, "ImageNotSupported", c.name);
      assert.match(c.state?.waiting?.message ?? "", /runs only ghcr\.io\/coder\/coder/);
    }
  });
});
