// make demo / make demo-down: the e2e stack, left running in the background.
//
//   node test/e2e/demo.ts up     start (or show) the demo; prints progress and URLs
//   node test/e2e/demo.ts down   stop it
//   node test/e2e/demo.ts run    (internal) the background process itself
//
// State lives in .cache/demo/: demo.pid, demo.log, state.json (URLs, kubeconfig,
// the pids of everything started, the pod network), kubeconfig.
import { spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { parseManifests } from "../support/helm.ts";
import { containersLabelled, kubeletLabel, podman } from "./podman.ts";
import { createCoderDeployment } from "../support/coder-deployment.ts";
import { eventually, testClients } from "../support/kube.ts";
import {
  kubePrometheusStackPrometheus,
  type OperatedPrometheus,
  startOperatedPrometheus,
} from "./operator.ts";
import { type LocalStack, startLocalStack, step } from "./stack.ts";
import { installController, waitForCondition } from "./support.ts";

const repoRoot = resolve(import.meta.dirname, "../..");
const stateDir = join(repoRoot, ".cache/demo");
const pidFile = join(stateDir, "demo.pid");
const logFile = join(stateDir, "demo.log");
const stateFile = join(stateDir, "state.json");
const coderNamespace = "coder";
const monitoringNamespace = "monitoring";

interface DemoState {
  kubeconfig: string;
  prometheusUrl: string;
  exporterUrl: string;
  coderdUrl: string;
  podCidr: string;
  /** The label value on the demo's containers (podman), when it runs the image. */
  containerRun?: string;
  pids: number[];
  startedAt: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runningPid(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

function summary(state: DemoState): string {
  const helmDir = join(repoRoot, ".cache/bin");
  return `
coder-metrics demo is running (background pid ${readFileSync(pidFile, "utf8").trim()}, log ${logFile})

  Prometheus            ${state.prometheusUrl}
    targets             ${state.prometheusUrl}/targets
    a transformed query ${state.prometheusUrl}/graph?g0.expr=${encodeURIComponent('coderd_agents_up{namespace="coder"}')}
  exporter /metrics     ${state.exporterUrl}      (coderd's own: ${state.coderdUrl})
  kubeconfig            export KUBECONFIG=${state.kubeconfig}

  try:
    node controller/cli.ts doctor -n ${coderNamespace} --prometheus-url ${state.prometheusUrl}
    $(ls -d ${helmDir}/helm-* | tail -1)/helm list -A
    curl -s ${state.exporterUrl} | head

  stop it with: make demo-down
`;
}

/** Streams the background process's log to the terminal until it is ready or gone. */
async function follow(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let offset = 0;
  const drain = () => {
    if (!existsSync(logFile)) return;
    const size = statSync(logFile).size;
    if (size <= offset) return;
    const fd = openSync(logFile, "r");
    const buffer = Buffer.alloc(size - offset);
    readSync(fd, buffer, 0, buffer.length, offset);
    closeSync(fd);
    offset = size;
    process.stdout.write(buffer);
  };
  while (Date.now() < deadline) {
    drain();
    if (existsSync(stateFile)) return true;
    if (!alive(pid)) {
      drain();
      return false;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  drain();
  return false;
}

async function up(): Promise<number> {
  const pid = runningPid();
  if (pid !== undefined && existsSync(stateFile)) {
    process.stdout.write(summary(JSON.parse(readFileSync(stateFile, "utf8")) as DemoState));
    return 0;
  }
  if (pid !== undefined) {
    console.error(`demo: pid ${pid} is still starting; see ${logFile}, or make demo-down`);
    return 1;
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, [import.meta.filename, "run"], {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", log, log],
  });
  child.unref();
  writeFileSync(pidFile, `${child.pid}\n`);
  console.log(`demo: starting in the background (pid ${child.pid}); progress:`);
  const ready = await follow(child.pid ?? 0, 10 * 60_000);
  if (!ready) {
    console.error(`\ndemo: did not come up; see ${logFile}. Cleaning up.`);
    await down();
    return 1;
  }
  process.stdout.write(summary(JSON.parse(readFileSync(stateFile, "utf8")) as DemoState));
  return 0;
}

async function down(): Promise<number> {
  const pid = runningPid();
  const state = existsSync(stateFile)
    ? (JSON.parse(readFileSync(stateFile, "utf8")) as DemoState)
    : undefined;
  if (pid === undefined && state === undefined) {
    console.log("demo: not running");
    rmSync(stateDir, { recursive: true, force: true });
    return 0;
  }
  // The demo's containers carry io.coder-metrics.process-kubelet=demo-<its pid>.
  const pidText = existsSync(pidFile) ? readFileSync(pidFile, "utf8").trim() : "";
  const containerRun = state?.containerRun ?? (pidText ? `demo-${pidText}` : undefined);
  if (pid !== undefined) {
    console.log(`demo: stopping pid ${pid} …`);
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + 60_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
  // Whatever survived a hard kill of the background process.
  for (const p of state?.pids ?? []) if (alive(p)) process.kill(p, "SIGKILL");
  if (containerRun !== undefined) {
    const left = await containersLabelled(kubeletLabel, containerRun).catch(() => []);
    if (left.length > 0) {
      console.log(`demo: removing ${left.length} container(s) left behind`);
      await podman(["rm", "--force", "--ignore", "--time=0", ...left]).catch(() => undefined);
    }
  }
  if (state?.podCidr) {
    spawn("ip", ["route", "del", "local", state.podCidr, "dev", "lo"], { stdio: "ignore" });
  }
  rmSync(stateDir, { recursive: true, force: true });
  console.log("demo: stopped");
  return 0;
}

/** The background process: builds the stack, then waits for SIGTERM. */
async function run(): Promise<number> {
  const started = Date.now();
  // Every temporary folder of the demo (control plane, Prometheus, the packaged chart) under
  // .cache/demo/, which make demo-down removes, even after a hard kill of this process.
  process.env.TMPDIR = join(stateDir, "tmp");
  mkdirSync(process.env.TMPDIR, { recursive: true });
  let stack: LocalStack | undefined;
  let prometheus: OperatedPrometheus | undefined;
  const stop = async () => {
    await prometheus?.stop().catch(() => undefined);
    await stack?.stop().catch(() => undefined);
  };
  try {
    stack = await startLocalStack({
      dir: join(stateDir, "stack"),
      keepDir: false,
      coderWorkspaces: 25,
      runId: `demo-${process.pid}`,
    });
    const kubeconfig = join(stateDir, "kubeconfig");
    copyFileSync(stack.kubeconfigPath, kubeconfig);
    process.env.KUBECONFIG = kubeconfig;
    const clients = testClients(kubeconfig);
    await step(
      `Prometheus resource ${monitoringNamespace}/kube-prometheus-stack (selects release=kube-prometheus-stack)`,
      async () => {
        await clients.core.createNamespace({ body: { metadata: { name: monitoringNamespace } } });
        await clients.objects.create(
          kubePrometheusStackPrometheus(monitoringNamespace, "kube-prometheus-stack") as never,
        );
      },
    );
    await step(
      "helm install coder-metrics (the packaged chart; the controller runs as a Pod)",
      () => installController("coder-metrics", "coder-metrics"),
    );
    await step(
      `Coder stand-in Deployment ${coderNamespace}/coder (labels of Coder's Helm chart)`,
      async () => {
        await clients.core.createNamespace({ body: { metadata: { name: coderNamespace } } });
        await createCoderDeployment(clients, coderNamespace);
      },
    );
    await step("CoderMetrics from manifests/examples/kube-prometheus-stack.yaml", async () => {
      const [cr] = parseManifests(
        readFileSync(join(repoRoot, "manifests/examples/kube-prometheus-stack.yaml"), "utf8"),
      );
      if (cr === undefined) throw new Error("the example holds no object");
      const r = await kubeFetch(
        clients.config,
        "POST",
        `/apis/coder-metrics.io/v1alpha1/namespaces/${coderNamespace}/codermetrics`,
        { body: { ...cr, metadata: { ...cr.metadata, namespace: coderNamespace } } },
      );
      if (r.status >= 300)
        throw new Error(`creating the CoderMetrics: HTTP ${r.status}: ${JSON.stringify(r.body)}`);
    });
    await step("controller: CoderMetrics Ready and Discovered", async () => {
      await waitForCondition(clients, coderNamespace, "coder", "Discovered", "True", 180_000);
      await waitForCondition(clients, coderNamespace, "coder", "Ready", "True", 180_000);
    });
    prometheus = await step("Prometheus with the Operator's generated config", () =>
      startOperatedPrometheus({
        kubeconfigPath: kubeconfig,
        namespace: monitoringNamespace,
        name: "kube-prometheus-stack",
      }),
    );
    const op = prometheus;
    const target = await step(
      "Prometheus scrapes the exporter (first scrape within the 30s interval)",
      () =>
        eventually(
          "the target up",
          async () =>
            (await op.targets()).find(
              (t) => t.labels.namespace === coderNamespace && t.health === "up",
            ),
          { timeoutMs: 180_000, intervalMs: 1000 },
        ),
    );
    const podIp = new URL(target.scrapeUrl).hostname;
    const state: DemoState = {
      kubeconfig,
      prometheusUrl: op.url,
      exporterUrl: target.scrapeUrl,
      coderdUrl: `http://${podIp}:2112/metrics`,
      podCidr: stack.kubelet.network.cidr,
      ...(stack.kubelet.runId ? { containerRun: stack.kubelet.runId } : {}),
      pids: [
        stack.controlPlane.etcd.pid,
        stack.controlPlane.apiserver.pid,
        stack.controlPlane.controllerManager?.pid,
        stack.operator.pid,
        op.process.pid,
      ].filter((p): p is number => p !== undefined),
      startedAt: new Date().toISOString(),
    };
    writeFileSync(stateFile, JSON.stringify(state, null, 2));
    console.log(`demo: ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  } catch (err) {
    console.error(`demo: ${(err as Error).stack ?? err}`);
    await stop();
    return 1;
  }
  await new Promise<void>((r) => {
    process.once("SIGTERM", () => r());
    process.once("SIGINT", () => r());
  });
  console.log("demo: shutting down");
  await stop();
  return 0;
}

const command = process.argv[2];
const commands: Record<string, () => Promise<number>> = { up, down, run };
const handler = command === undefined ? undefined : commands[command];
if (handler === undefined) {
  console.error("usage: node test/e2e/demo.ts up|down");
  process.exitCode = 2;
} else {
  process.exitCode = await handler();
}
