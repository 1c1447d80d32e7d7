// A process kubelet for the e2e suite and `make demo`: there is no container
// runtime, so it runs this project's own containers as local processes.
//
// It registers one Node (Ready); binds Pods nobody scheduled to it through the
// pods/binding subresource (there is no kube-scheduler); gives each Pod an IP
// of its own (see pod-network.ts); starts each container as planned by
// pod-spec.ts — coderd as the Coder stand-in, coder-metrics `exporter` and
// `controller` as `node controller/cli.ts …` — with ConfigMap and Secret
// volumes materialised into a directory and kept up to date; probes httpGet
// readiness against the Pod IP; reports phase, IPs, conditions and container
// states through pods/status; and, when a Pod is deleted, stops its processes
// and finishes the deletion (grace period 0), as a kubelet does.
//
// One loop, level-triggered: every `syncIntervalMs` it lists the Pods and
// converges each one. Small on purpose; it is not a kubelet beyond that.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { V1Container, V1Pod, V1Volume } from "@kubernetes/client-node";
import * as k8s from "@kubernetes/client-node";
import { stringify } from "yaml";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { openPodNetwork, type PodNetwork } from "./pod-network.ts";
import { type ContainerPlan, planContainer, probePort, resolveEnv } from "./pod-spec.ts";

const repoRoot = resolve(import.meta.dirname, "../..");

export interface KubeletOptions {
  kubeconfigPath: string;
  /** Where pod volumes, credentials and container logs go. */
  dir: string;
  nodeName?: string;
  /** A /24 for pod IPs (default: a random one of 198.18.0.0/16). */
  podCidr?: string;
  coderWorkspaces?: number;
  syncIntervalMs?: number;
  log?: (line: string) => void;
}

interface RunningContainer {
  name: string;
  plan: ContainerPlan;
  child: ChildProcess | undefined;
  startedAt: string | undefined;
  restarts: number;
  /** Do not restart before this time (crash-loop backoff). */
  backoffUntil: number;
  lastExit: { code: number | null; signal: string | null; at: string } | undefined;
  ready: boolean;
}

interface PodState {
  uid: string;
  namespace: string;
  name: string;
  ip: string;
  dir: string;
  startTime: string;
  containers: RunningContainer[];
  /** Last status sent, to patch only on change. */
  lastStatus: string;
  stopping: boolean;
}

export class ProcessKubelet {
  readonly nodeName: string;
  readonly network: PodNetwork;
  private readonly config: k8s.KubeConfig;
  private readonly options: KubeletOptions;
  private readonly pods = new Map<string, PodState>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(options: KubeletOptions, network: PodNetwork) {
    this.options = options;
    this.network = network;
    this.nodeName = options.nodeName ?? "process-kubelet";
    this.config = new k8s.KubeConfig();
    this.config.loadFromFile(options.kubeconfigPath);
  }

  static async start(options: KubeletOptions): Promise<ProcessKubelet> {
    mkdirSync(options.dir, { recursive: true });
    const kubelet = new ProcessKubelet(options, openPodNetwork(options.podCidr));
    try {
      await kubelet.registerNode();
    } catch (err) {
      kubelet.network.close();
      throw err;
    }
    kubelet.schedule();
    return kubelet;
  }

  /** The IP given to a Pod, if it runs here. */
  podIp(namespace: string, name: string): string | undefined {
    for (const p of this.pods.values())
      if (p.namespace === namespace && p.name === name) return p.ip;
    return undefined;
  }

  /** Stops every process and the sync loop; Pods stay in the API (the Node is gone with the cluster). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.syncing;
    await Promise.all([...this.pods.values()].map((p) => this.stopPod(p)));
    this.pods.clear();
    this.network.close();
  }

  private log(message: string, fields: Record<string, unknown> = {}): void {
    const line = JSON.stringify({ time: new Date().toISOString(), msg: message, ...fields });
    if (this.options.log) this.options.log(line);
    else writeFileSync(join(this.options.dir, "kubelet.log"), `${line}\n`, { flag: "a" });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.syncing = this.sync()
        .catch((err) => this.log("sync failed", { error: String(err) }))
        .finally(() => this.schedule());
    }, this.options.syncIntervalMs ?? 500);
  }

  private async api(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: unknown }> {
    return kubeFetch(this.config, method, path, {
      ...(body !== undefined ? { body } : {}),
      ...(contentType ? { contentType } : {}),
    });
  }

  private async registerNode(): Promise<void> {
    const name = this.nodeName;
    const created = await this.api("POST", "/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name,
        labels: {
          "kubernetes.io/hostname": name,
          "kubernetes.io/os": "linux",
          "coder-metrics.test/process-kubelet": "true",
        },
      },
      spec: { podCIDR: this.network.cidr, podCIDRs: [this.network.cidr] },
    });
    if (created.status >= 300 && created.status !== 409) {
      throw new Error(
        `registering Node ${name}: HTTP ${created.status}: ${JSON.stringify(created.body)}`,
      );
    }
    const now = new Date().toISOString();
    const status = await this.api(
      "PATCH",
      `/api/v1/nodes/${name}/status`,
      {
        status: {
          capacity: { cpu: "2", memory: "4Gi", pods: "110" },
          allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
          addresses: [
            { type: "InternalIP", address: "127.0.0.1" },
            { type: "Hostname", address: name },
          ],
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "KubeletReady",
              message: "process kubelet is posting ready status",
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          nodeInfo: {
            kubeletVersion: "v1.36.3-process",
            kubeProxyVersion: "",
            operatingSystem: "linux",
            architecture: process.arch === "x64" ? "amd64" : process.arch,
            containerRuntimeVersion: "process://node",
            osImage: "process kubelet",
            kernelVersion: "",
            machineID: "",
            systemUUID: "",
            bootID: "",
          },
        },
      },
      "application/merge-patch+json",
    );
    if (status.status >= 300) {
      throw new Error(`Node ${name} status: HTTP ${status.status}: ${JSON.stringify(status.body)}`);
    }
    this.log("node registered", { node: name, podCidr: this.network.cidr });
  }

  private async sync(): Promise<void> {
    const list = await this.api("GET", "/api/v1/pods");
    if (list.status !== 200) throw new Error(`listing pods: HTTP ${list.status}`);
    const pods = (list.body as { items: V1Pod[] }).items;
    const seen = new Set<string>();
    for (const pod of pods) {
      const uid = pod.metadata?.uid ?? "";
      const nodeName = pod.spec?.nodeName;
      if (!nodeName) {
        if (!pod.metadata?.deletionTimestamp) await this.bind(pod);
        continue;
      }
      if (nodeName !== this.nodeName) continue;
      seen.add(uid);
      try {
        await this.syncPod(pod);
      } catch (err) {
        this.log("pod sync failed", {
          pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`,
          error: String(err),
        });
      }
    }
    // Pods gone from the API (force-deleted, namespace removed): stop their processes.
    for (const [uid, state] of this.pods) {
      if (!seen.has(uid)) {
        await this.stopPod(state);
        this.forget(state);
      }
    }
  }

  private async bind(pod: V1Pod): Promise<void> {
    const scheduler = pod.spec?.schedulerName ?? "default-scheduler";
    if (scheduler !== "default-scheduler") return;
    const { namespace, name } = pod.metadata ?? {};
    const r = await this.api("POST", `/api/v1/namespaces/${namespace}/pods/${name}/binding`, {
      apiVersion: "v1",
      kind: "Binding",
      metadata: { name, namespace },
      target: { apiVersion: "v1", kind: "Node", name: this.nodeName },
    });
    if (r.status < 300)
      this.log("bound", { pod: `${namespace}/${name}`, created: pod.metadata?.creationTimestamp });
    else if (r.status !== 409)
      this.log("binding failed", { pod: `${namespace}/${name}`, status: r.status, body: r.body });
  }

  private async syncPod(pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? "";
    const namespace = pod.metadata?.namespace ?? "";
    const name = pod.metadata?.name ?? "";
    let state = this.pods.get(uid);
    if (pod.metadata?.deletionTimestamp) {
      if (state) await this.stopPod(state);
      // Processes are gone: finish the deletion the way a kubelet does.
      const r = await this.api("DELETE", `/api/v1/namespaces/${namespace}/pods/${name}`, {
        apiVersion: "v1",
        kind: "DeleteOptions",
        gracePeriodSeconds: 0,
        preconditions: { uid },
      });
      if (r.status < 300 || r.status === 404 || r.status === 409) {
        if (state) this.forget(state);
        this.log("pod deleted", { pod: `${namespace}/${name}` });
      }
      return;
    }
    if (state === undefined) {
      const ip = this.network.allocate();
      const dir = join(this.options.dir, "pods", `${namespace}_${name}_${uid.slice(0, 8)}`);
      mkdirSync(dir, { recursive: true });
      state = {
        uid,
        namespace,
        name,
        ip,
        dir,
        startTime: new Date().toISOString(),
        containers: [],
        lastStatus: "",
        stopping: false,
      };
      this.pods.set(uid, state);
      this.log("pod admitted", { pod: `${namespace}/${name}`, ip });
    }
    const mounts = await this.syncVolumes(pod, state);
    const waitingForToken = (c: RunningContainer) =>
      !c.plan.ok && c.plan.reason === "NoCredentials";
    if (state.containers.length === 0) {
      state.containers = await this.planContainers(pod, state, mounts);
    } else if (state.containers.some(waitingForToken)) {
      // The ServiceAccount may not have existed yet: ask for a token again.
      const fresh = await this.planContainers(pod, state, mounts);
      state.containers = state.containers.map((c, i) => (waitingForToken(c) ? (fresh[i] ?? c) : c));
    }
    for (const c of state.containers) this.ensureRunning(state, c);
    await this.probe(pod, state);
    await this.reportStatus(pod, state);
  }

  private async planContainers(
    pod: V1Pod,
    state: PodState,
    mounts: Map<string, string>,
  ): Promise<RunningContainer[]> {
    const spec = pod.spec;
    const kubeconfigPath = spec?.containers.some((c) => (c.args ?? [])[0] === "controller")
      ? await this.serviceAccountKubeconfig(pod, state)
      : undefined;
    const out: RunningContainer[] = [];
    for (const container of spec?.containers ?? []) {
      const env = await this.containerEnv(pod, container, state.ip);
      const plan = planContainer({
        pod,
        container,
        podIp: state.ip,
        env,
        mounts: (container.volumeMounts ?? []).flatMap((m) => {
          const dir = mounts.get(m.name);
          return dir === undefined
            ? []
            : [{ mountPath: m.mountPath, dir: m.subPath ? join(dir, m.subPath) : dir }];
        }),
        node: this.nodeName,
        repoRoot,
        coderWorkspaces: this.options.coderWorkspaces ?? 20,
        ...(kubeconfigPath ? { kubeconfigPath } : {}),
      });
      if (!plan.ok) {
        this.log("container not runnable", {
          pod: `${state.namespace}/${state.name}`,
          container: container.name,
          reason: plan.reason,
        });
      }
      out.push({
        name: container.name,
        plan,
        child: undefined,
        startedAt: undefined,
        restarts: 0,
        backoffUntil: 0,
        lastExit: undefined,
        ready: false,
      });
    }
    return out;
  }

  private async containerEnv(
    pod: V1Pod,
    container: V1Container,
    ip: string,
  ): Promise<Record<string, string>> {
    const namespace = pod.metadata?.namespace ?? "";
    const refs = new Map<string, string>();
    for (const e of container.env ?? []) {
      const cm = e.valueFrom?.configMapKeyRef;
      const secret = e.valueFrom?.secretKeyRef;
      if (cm) {
        const data = await this.objectData("configmaps", namespace, cm.name ?? "");
        const v = data?.[cm.key];
        if (v !== undefined) refs.set(e.name, v);
      } else if (secret) {
        const data = await this.objectData("secrets", namespace, secret.name ?? "");
        const v = data?.[secret.key];
        if (v !== undefined) refs.set(e.name, v);
      }
    }
    const fromEnvFrom: Record<string, string> = {};
    for (const source of container.envFrom ?? []) {
      const data = source.configMapRef
        ? await this.objectData("configmaps", namespace, source.configMapRef.name ?? "")
        : source.secretRef
          ? await this.objectData("secrets", namespace, source.secretRef.name ?? "")
          : undefined;
      for (const [k, v] of Object.entries(data ?? {}))
        fromEnvFrom[`${source.prefix ?? ""}${k}`] = v;
    }
    return {
      ...fromEnvFrom,
      ...resolveEnv(pod, container, ip, this.nodeName, (e) => refs.get(e.name)),
    };
  }

  /** A ConfigMap's or Secret's data as strings; undefined when it does not exist. */
  private async objectData(
    resource: "configmaps" | "secrets",
    namespace: string,
    name: string,
  ): Promise<Record<string, string> | undefined> {
    const r = await this.api("GET", `/api/v1/namespaces/${namespace}/${resource}/${name}`);
    if (r.status !== 200) return undefined;
    const body = r.body as { data?: Record<string, string> };
    if (resource === "configmaps") return body.data ?? {};
    return Object.fromEntries(
      Object.entries(body.data ?? {}).map(([k, v]) => [
        k,
        Buffer.from(v, "base64").toString("utf8"),
      ]),
    );
  }

  /** Writes each ConfigMap/Secret volume into the pod's folder (atomically, only on change). */
  private async syncVolumes(pod: V1Pod, state: PodState): Promise<Map<string, string>> {
    const dirs = new Map<string, string>();
    for (const volume of pod.spec?.volumes ?? []) {
      const dir = join(state.dir, "volumes", volume.name);
      mkdirSync(dir, { recursive: true });
      dirs.set(volume.name, dir);
      const files = await this.volumeFiles(pod, volume);
      for (const [file, content] of Object.entries(files ?? {}))
        writeIfChanged(join(dir, file), content);
    }
    return dirs;
  }

  private async volumeFiles(
    pod: V1Pod,
    volume: V1Volume,
  ): Promise<Record<string, string> | undefined> {
    const namespace = pod.metadata?.namespace ?? "";
    const source = volume.configMap
      ? {
          data: await this.objectData("configmaps", namespace, volume.configMap.name ?? ""),
          items: volume.configMap.items,
        }
      : volume.secret
        ? {
            data: await this.objectData("secrets", namespace, volume.secret.secretName ?? ""),
            items: volume.secret.items,
          }
        : undefined;
    if (source?.data === undefined) return undefined;
    if (!source.items?.length) return source.data;
    const files: Record<string, string> = {};
    for (const item of source.items) {
      const v = source.data[item.key];
      if (v !== undefined) files[item.path] = v;
    }
    return files;
  }

  /** The Pod's ServiceAccount as a kubeconfig: a TokenRequest bound to the Pod, and the cluster's CA. */
  private async serviceAccountKubeconfig(pod: V1Pod, state: PodState): Promise<string | undefined> {
    const sa = pod.spec?.serviceAccountName ?? "default";
    const r = await this.api(
      "POST",
      `/api/v1/namespaces/${state.namespace}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          expirationSeconds: 86_400,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: state.name, uid: state.uid },
        },
      },
    );
    if (r.status >= 300) {
      this.log("token request failed", {
        pod: `${state.namespace}/${state.name}`,
        status: r.status,
        body: r.body,
      });
      return undefined;
    }
    const token = (r.body as { status: { token: string } }).status.token;
    const cluster = this.config.getCurrentCluster();
    const ca =
      cluster?.caData ??
      (cluster?.caFile ? readFileSync(cluster.caFile).toString("base64") : undefined);
    const path = join(state.dir, "kubeconfig");
    writeFileSync(
      path,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "cluster",
            cluster: { server: cluster?.server, "certificate-authority-data": ca },
          },
        ],
        users: [{ name: sa, user: { token } }],
        contexts: [
          { name: "pod", context: { cluster: "cluster", user: sa, namespace: state.namespace } },
        ],
        "current-context": "pod",
      }),
      { mode: 0o600 },
    );
    return path;
  }

  private ensureRunning(state: PodState, c: RunningContainer): void {
    if (!c.plan.ok || c.child !== undefined || state.stopping || Date.now() < c.backoffUntil)
      return;
    const { command, args, env } = c.plan.process;
    const logPath = join(state.dir, `${c.name}.log`);
    const log = openSync(logPath, "a");
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", log, log] });
    c.child = child;
    c.startedAt = new Date().toISOString();
    c.ready = false;
    this.log("container started", {
      pod: `${state.namespace}/${state.name}`,
      container: c.name,
      pid: child.pid,
      log: logPath,
    });
    child.once("exit", (code, signal) => {
      c.child = undefined;
      c.ready = false;
      c.lastExit = { code, signal, at: new Date().toISOString() };
      if (state.stopping) return;
      c.restarts++;
      // CrashLoopBackOff, shortened: 1s, 2s, 4s … capped at 10s.
      c.backoffUntil = Date.now() + Math.min(10_000, 1000 * 2 ** Math.min(c.restarts - 1, 4));
      this.log("container exited", {
        pod: `${state.namespace}/${state.name}`,
        container: c.name,
        code,
        signal,
      });
    });
  }

  private async probe(pod: V1Pod, state: PodState): Promise<void> {
    await Promise.all(
      state.containers.map(async (c) => {
        const container = pod.spec?.containers.find((x) => x.name === c.name);
        if (c.child === undefined || container === undefined) {
          c.ready = false;
          return;
        }
        const http = container.readinessProbe?.httpGet;
        if (container.readinessProbe === undefined) {
          c.ready = true;
          return;
        }
        if (http === undefined) {
          c.ready = true; // exec/tcp probes are not run here: trust a running process
          return;
        }
        const port = probePort(container, http.port as number | string);
        const url = `http://${http.host || state.ip}:${port}${http.path ?? "/"}`;
        const timeoutMs = 1000 * (container.readinessProbe.timeoutSeconds ?? 1);
        const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) }).catch(
          () => undefined,
        );
        await response?.body?.cancel().catch(() => undefined);
        c.ready = response !== undefined && response.status >= 200 && response.status < 400;
      }),
    );
  }

  private async reportStatus(pod: V1Pod, state: PodState): Promise<void> {
    const containerStatuses = state.containers.map((c) => {
      const container = pod.spec?.containers.find((x) => x.name === c.name);
      const image = container?.image ?? "";
      let containerState: Record<string, unknown>;
      if (!c.plan.ok)
        containerState = { waiting: { reason: c.plan.reason, message: c.plan.message } };
      else if (c.child !== undefined) containerState = { running: { startedAt: c.startedAt } };
      else if (c.restarts > 0) {
        containerState = {
          waiting: {
            reason: "CrashLoopBackOff",
            message: `exited with code ${c.lastExit?.code}; see ${join(state.dir, `${c.name}.log`)}`,
          },
        };
      } else containerState = { waiting: { reason: "ContainerCreating" } };
      return {
        name: c.name,
        image,
        imageID: c.plan.ok ? `process://${c.plan.kind}` : "",
        ...(c.child?.pid ? { containerID: `process://${c.child.pid}` } : {}),
        ready: c.ready,
        started: c.child !== undefined,
        restartCount: c.restarts,
        state: containerState,
        ...(c.lastExit
          ? {
              lastState: {
                terminated: {
                  exitCode: c.lastExit.code ?? 137,
                  ...(c.lastExit.signal
                    ? { signal: 9, reason: "Error" }
                    : { reason: c.lastExit.code === 0 ? "Completed" : "Error" }),
                  finishedAt: c.lastExit.at,
                },
              },
            }
          : {}),
      };
    });
    const allReady = state.containers.length > 0 && state.containers.every((c) => c.ready);
    const anyRunning = state.containers.some((c) => c.child !== undefined);
    const notReady = state.containers.filter((c) => !c.ready).map((c) => c.name);
    const condition = (type: string, ok: boolean, reason?: string, message?: string) => ({
      type,
      status: ok ? "True" : "False",
      ...(ok ? {} : { reason, message }),
    });
    const status = {
      phase: anyRunning ? "Running" : "Pending",
      hostIP: "127.0.0.1",
      hostIPs: [{ ip: "127.0.0.1" }],
      podIP: state.ip,
      podIPs: [{ ip: state.ip }],
      startTime: state.startTime,
      conditions: [
        condition("PodScheduled", true),
        condition("Initialized", true),
        condition("PodReadyToStartContainers", true),
        condition(
          "ContainersReady",
          allReady,
          "ContainersNotReady",
          `containers with unready status: [${notReady.join(" ")}]`,
        ),
        condition(
          "Ready",
          allReady,
          "ContainersNotReady",
          `containers with unready status: [${notReady.join(" ")}]`,
        ),
      ],
      containerStatuses,
    };
    const text = JSON.stringify(status);
    if (text === state.lastStatus) return;
    const now = new Date().toISOString();
    const r = await this.api(
      "PATCH",
      `/api/v1/namespaces/${state.namespace}/pods/${state.name}/status`,
      {
        metadata: { uid: state.uid },
        status: {
          ...status,
          conditions: status.conditions.map((c) => ({ ...c, lastTransitionTime: now })),
        },
      },
      "application/merge-patch+json",
    );
    if (r.status < 300) state.lastStatus = text;
    else
      this.log("status update failed", {
        pod: `${state.namespace}/${state.name}`,
        status: r.status,
        body: r.body,
      });
  }

  private async stopPod(state: PodState): Promise<void> {
    state.stopping = true;
    await Promise.all(
      state.containers.map(async (c) => {
        const child = c.child;
        if (child === undefined) return;
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private forget(state: PodState): void {
    this.pods.delete(state.uid);
    this.network.release(state.ip);
    rmSync(join(state.dir, "volumes"), { recursive: true, force: true });
  }
}

function writeIfChanged(path: string, content: string): void {
  try {
    if (readFileSync(path, "utf8") === content) return;
  } catch {
    // new file
  }
  // Write-then-rename, so a reader never sees half a file (the exporter watches the folder).
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}
