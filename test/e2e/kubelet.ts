// A process kubelet for the e2e suite and `make demo`: it runs this project's
// own containers, and a Coder stand-in for coderd, on this machine.
//
// It registers one Node (Ready); binds Pods nobody scheduled to it through the
// pods/binding subresource (there is no kube-scheduler); gives each Pod an IP
// of its own (see pod-network.ts); starts each container as planned by
// pod-spec.ts — coderd as the Coder stand-in process; coder-metrics images,
// with `containers` set, as containers of the image `make image` built (podman
// + runc: the image's entrypoint, the Pod's args, env, user, read-only root and
// volumes), otherwise as `node controller/cli.ts …` from the sources — with
// ConfigMap, Secret, downward API and projected (ServiceAccount token) volumes
// materialised into a directory per volume and kept up to date (a container
// gets that directory bind-mounted), emptyDirs as empty directories; probes
// httpGet readiness against the Pod IP; restarts exited containers with a
// backoff; reports phase, IPs, conditions and container states through
// pods/status; and, when a Pod is deleted, stops its containers and finishes
// the deletion (grace period 0), as a kubelet does.
//
// One loop, level-triggered: every `syncIntervalMs` it lists the Pods and
// converges each one. Small on purpose; it is not a kubelet beyond that.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import type {
  V1Container,
  V1KeyToPath,
  V1Pod,
  V1ServiceAccountTokenProjection,
  V1Volume,
} from "@kubernetes/client-node";
import * as k8s from "@kubernetes/client-node";
import { stringify } from "yaml";
import { kubeFetch } from "../../controller/operator/kube-fetch.ts";
import { openPodNetwork, type PodNetwork } from "./pod-network.ts";
import {
  containersLabelled,
  type ImageFacts,
  inspectImage,
  kubeletLabel,
  podmanVersion,
  type Reaper,
  startReaper,
  stopContainer,
} from "./podman.ts";
import {
  type ContainerPlan,
  coderMetricsImage,
  fieldValue,
  type LocalImage,
  localImageRef,
  planContainer,
  podmanRunArgs,
  probePort,
  resolveEnv,
} from "./pod-spec.ts";

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
  /**
   * Run coder-metrics images as containers (podman), from local images; unset:
   * run them from the sources as processes (the fallback, see runtime.ts).
   */
  containers?: ContainerRuntimeOptions;
}

export interface ContainerRuntimeOptions {
  /**
   * A Pod image's repository → the local repository to run instead, same tag:
   * ghcr.io/coder-metrics/coder-metrics:0.1.0 runs localhost/coder-metrics:0.1.0.
   */
  localRepositories: Record<string, string>;
  /**
   * Local image name → the image id this run uses for it, taken when the run
   * started: a build from another checkout that retags the name meanwhile
   * (the machine's image storage is shared) does not swap it midway.
   */
  pinned?: Record<string, string>;
  /** The value of this run's container label (default: <node name>-<random>). */
  runId?: string;
}

/** A file of a volume: its content and mode. */
interface VolumeFile {
  content: string;
  mode: number;
}

/** A volume's directory and whether it could be set up (a missing ConfigMap, no token yet). */
interface VolumeState {
  dir: string;
  ready: boolean;
  message?: string;
}

interface RunningContainer {
  name: string;
  plan: ContainerPlan;
  /** The process, or for a container its attached `podman run`. */
  child: ChildProcess | undefined;
  /** A container's name in podman, and where podman writes its id. */
  podmanName?: string;
  cidfile?: string;
  containerId?: string;
  imageId?: string;
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
  /** Projected ServiceAccount tokens by volume/path, and when to renew each. */
  tokens: Map<string, { token: string; renewAt: number }>;
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
  /** With `containers`: the value of `io.coder-metrics.process-kubelet` on this run's containers. */
  readonly runId: string | undefined;
  private reaper: Reaper | undefined;
  private runtimeVersion = "process://node";
  /** Local images found so far (an absent one is looked up again on the next sync). */
  private readonly images = new Map<string, ImageFacts>();

  private constructor(options: KubeletOptions, network: PodNetwork) {
    this.options = options;
    this.network = network;
    this.nodeName = options.nodeName ?? "process-kubelet";
    this.config = new k8s.KubeConfig();
    this.config.loadFromFile(options.kubeconfigPath);
    this.runId = options.containers
      ? (options.containers.runId ?? `${this.nodeName}-${randomBytes(4).toString("hex")}`)
      : undefined;
  }

  static async start(options: KubeletOptions): Promise<ProcessKubelet> {
    mkdirSync(options.dir, { recursive: true });
    const kubelet = new ProcessKubelet(options, openPodNetwork(options.podCidr));
    try {
      if (kubelet.runId !== undefined) kubelet.runtimeVersion = `podman://${await podmanVersion()}`;
      // Ends what this kubelet started if its process ends without stop().
      kubelet.reaper = startReaper(kubelet.runId, options.dir);
      await kubelet.registerNode();
    } catch (err) {
      kubelet.network.close();
      await kubelet.reaper?.close(true);
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

  /**
   * Stops every container and the sync loop; Pods stay in the API (the Node is
   * gone with the cluster). With containers, it fails when podman still lists
   * one of this run's containers afterwards.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.syncing;
    await Promise.all([...this.pods.values()].map((p) => this.stopPod(p)));
    this.pods.clear();
    this.network.close();
    await this.reaper?.close(true);
    if (this.runId !== undefined) {
      const left = await containersLabelled(kubeletLabel, this.runId);
      if (left.length > 0) {
        throw new Error(
          `process kubelet: podman still lists ${left.length} container(s) labelled ${kubeletLabel}=${this.runId}: ${left.join(" ")}`,
        );
      }
    }
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
            containerRuntimeVersion: this.runtimeVersion,
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
      if (state) await this.stopPod(state, pod);
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
        tokens: new Map(),
      };
      this.pods.set(uid, state);
      this.log("pod admitted", { pod: `${namespace}/${name}`, ip });
    }
    const volumes = await this.syncVolumes(pod, state);
    // Reasons that can pass: a ServiceAccount or ConfigMap created later, `make image` run since.
    const waiting = (c: RunningContainer) =>
      !c.plan.ok &&
      ["NoCredentials", "ContainerCreating", "ErrImageNeverPull"].includes(c.plan.reason);
    if (state.containers.length === 0) {
      state.containers = await this.planContainers(pod, state, volumes);
    } else if (state.containers.some(waiting)) {
      const fresh = await this.planContainers(pod, state, volumes);
      state.containers = state.containers.map((c, i) => (waiting(c) ? (fresh[i] ?? c) : c));
    }
    for (const c of state.containers) this.ensureRunning(state, c);
    await this.probe(pod, state);
    await this.reportStatus(pod, state);
  }

  private async planContainers(
    pod: V1Pod,
    state: PodState,
    volumes: Map<string, VolumeState>,
  ): Promise<RunningContainer[]> {
    const spec = pod.spec;
    const containers = this.options.containers;
    // From the sources, the controller gets its token as a kubeconfig; in a
    // container, from its projected volume, as in any cluster.
    const kubeconfigPath =
      containers === undefined && spec?.containers.some((c) => (c.args ?? [])[0] === "controller")
        ? await this.serviceAccountKubeconfig(pod, state)
        : undefined;
    const out: RunningContainer[] = [];
    for (const container of spec?.containers ?? []) {
      const env = await this.containerEnv(pod, container, state.ip);
      const unmounted = (container.volumeMounts ?? [])
        .map((m) => volumes.get(m.name))
        .find((v) => v !== undefined && !v.ready);
      const local =
        containers !== undefined && coderMetricsImage.test(container.image ?? "")
          ? await this.localImage(container.image ?? "", containers)
          : undefined;
      const plan: ContainerPlan =
        unmounted !== undefined
          ? { ok: false, reason: "ContainerCreating", message: unmounted.message ?? "" }
          : planContainer({
              pod,
              container,
              podIp: state.ip,
              env,
              mounts: (container.volumeMounts ?? []).flatMap((m) => {
                const volume = volumes.get(m.name);
                return volume === undefined
                  ? []
                  : [
                      {
                        mountPath: m.mountPath,
                        dir: m.subPath ? join(volume.dir, m.subPath) : volume.dir,
                        readOnly: m.readOnly === true || readOnlyVolume(pod, m.name),
                      },
                    ];
              }),
              node: this.nodeName,
              repoRoot,
              coderWorkspaces: this.options.coderWorkspaces ?? 20,
              ...(kubeconfigPath ? { kubeconfigPath } : {}),
              ...(containers !== undefined
                ? { runtime: "podman" as const, serviceEnv: this.serviceEnv() }
                : {}),
              ...(local !== undefined ? { localImage: local } : {}),
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
        ...(local?.found ? { imageId: this.images.get(local.ref)?.digest ?? "" } : {}),
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

  /** The local image a coder-metrics image runs from (looked up in podman's storage). */
  private async localImage(
    image: string,
    containers: ContainerRuntimeOptions,
  ): Promise<LocalImage> {
    const ref = localImageRef(image, containers.localRepositories);
    if (ref === undefined) return { found: false, ref };
    const pinned = containers.pinned?.[ref];
    let facts = this.images.get(ref);
    if (facts === undefined) {
      facts = await inspectImage(pinned ?? ref);
      if (facts === undefined) return { found: false, ref };
      this.images.set(ref, facts);
      this.log("image", { image, local: ref, id: facts.id.slice(0, 12), user: facts.user });
    }
    return { found: true, ref, ...(pinned ? { id: facts.id } : {}), user: facts.user };
  }

  /**
   * What a kubelet puts in every container for in-cluster clients. A real one
   * names the kubernetes Service's ClusterIP; without kube-proxy here, the API
   * server's own address (every container shares the test's network namespace).
   */
  private serviceEnv(): Record<string, string> {
    const server = new URL(this.config.getCurrentCluster()?.server ?? "https://127.0.0.1:443");
    const host = server.hostname.replace(/^\[|\]$/g, "");
    const port = server.port || "443";
    return {
      KUBERNETES_SERVICE_HOST: host,
      KUBERNETES_SERVICE_PORT: port,
      KUBERNETES_SERVICE_PORT_HTTPS: port,
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

  /**
   * Writes each volume's files into the Pod's folder for it (atomically, only on
   * change): ConfigMap, Secret, downward API and projected volumes; an emptyDir
   * (or any other kind) is an empty, world-writable folder, as a kubelet makes it.
   */
  private async syncVolumes(pod: V1Pod, state: PodState): Promise<Map<string, VolumeState>> {
    const volumes = new Map<string, VolumeState>();
    for (const volume of pod.spec?.volumes ?? []) {
      const dir = join(state.dir, "volumes", volume.name);
      mkdirSync(dir, { recursive: true });
      const files = await this.volumeFiles(pod, state, volume);
      if (files === undefined) {
        chmodSync(dir, 0o777);
        volumes.set(volume.name, { dir, ready: true });
        continue;
      }
      for (const [file, { content, mode }] of Object.entries(files.files))
        writeIfChanged(join(dir, file), content, mode);
      volumes.set(volume.name, {
        dir,
        ready: files.missing === undefined,
        ...(files.missing !== undefined
          ? { message: `MountVolume.SetUp failed for volume "${volume.name}": ${files.missing}` }
          : {}),
      });
    }
    return volumes;
  }

  /** A volume's files; undefined for a volume that starts empty (emptyDir). */
  private async volumeFiles(
    pod: V1Pod,
    state: PodState,
    volume: V1Volume,
  ): Promise<{ files: Record<string, VolumeFile>; missing?: string } | undefined> {
    const namespace = pod.metadata?.namespace ?? "";
    const files: Record<string, VolumeFile> = {};
    const missing: string[] = [];
    const add = (
      data: Record<string, string> | undefined,
      items: V1KeyToPath[] | undefined,
      defaultMode: number,
    ) => {
      if (data === undefined) return;
      if (!items?.length) {
        for (const [k, v] of Object.entries(data)) files[k] = { content: v, mode: defaultMode };
        return;
      }
      for (const item of items) {
        const v = data[item.key];
        if (v !== undefined) files[item.path] = { content: v, mode: item.mode ?? defaultMode };
      }
    };
    const object = async (
      resource: "configmaps" | "secrets",
      name: string,
      optional: boolean | undefined,
    ) => {
      const data = await this.objectData(resource, namespace, name);
      if (data === undefined && !optional)
        missing.push(`${resource === "configmaps" ? "configmap" : "secret"} "${name}" not found`);
      return data;
    };
    const downward = (
      items: Array<{ path: string; mode?: number; fieldRef?: { fieldPath: string } }>,
      mode: number,
    ) => {
      for (const item of items) {
        if (item.fieldRef)
          files[item.path] = {
            content: fieldValue(pod, item.fieldRef.fieldPath, state.ip, this.nodeName),
            mode: item.mode ?? mode,
          };
      }
    };
    if (volume.configMap) {
      const mode = volume.configMap.defaultMode ?? 0o644;
      const c = volume.configMap;
      add(await object("configmaps", c.name ?? "", c.optional), c.items, mode);
    } else if (volume.secret) {
      const mode = volume.secret.defaultMode ?? 0o644;
      const c = volume.secret;
      add(await object("secrets", c.secretName ?? "", c.optional), c.items, mode);
    } else if (volume.downwardAPI) {
      downward(volume.downwardAPI.items ?? [], volume.downwardAPI.defaultMode ?? 0o644);
    } else if (volume.projected) {
      const mode = volume.projected.defaultMode ?? 0o644;
      for (const source of volume.projected.sources ?? []) {
        if (source.configMap) {
          const c = source.configMap;
          add(await object("configmaps", c.name ?? "", c.optional), c.items, mode);
        } else if (source.secret) {
          const c = source.secret;
          add(await object("secrets", c.name ?? "", c.optional), c.items, mode);
        } else if (source.downwardAPI) {
          downward(source.downwardAPI.items ?? [], mode);
        } else if (source.serviceAccountToken) {
          const path = source.serviceAccountToken.path;
          const token = await this.projectedToken(
            pod,
            state,
            `${volume.name}/${path}`,
            source.serviceAccountToken,
          );
          if (token === undefined) missing.push("no ServiceAccount token yet");
          else files[path] = { content: token, mode };
        }
      }
    } else {
      return undefined;
    }
    return { files, ...(missing.length > 0 ? { missing: missing.join("; ") } : {}) };
  }

  /**
   * A ServiceAccount token bound to the Pod (TokenRequest), renewed after 80% of
   * its lifetime, as the kubelet's token manager does.
   */
  private async projectedToken(
    pod: V1Pod,
    state: PodState,
    key: string,
    projection: V1ServiceAccountTokenProjection,
  ): Promise<string | undefined> {
    const held = state.tokens.get(key);
    if (held !== undefined && Date.now() < held.renewAt) return held.token;
    const sa = pod.spec?.serviceAccountName ?? "default";
    const seconds = projection.expirationSeconds ?? 3600;
    const r = await this.api(
      "POST",
      `/api/v1/namespaces/${state.namespace}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          ...(projection.audience ? { audiences: [projection.audience] } : {}),
          expirationSeconds: seconds,
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
      return held?.token;
    }
    const status = (r.body as { status: { token: string; expirationTimestamp?: string } }).status;
    const expires = status.expirationTimestamp
      ? Date.parse(status.expirationTimestamp)
      : Date.now() + seconds * 1000;
    const now = Date.now();
    state.tokens.set(key, { token: status.token, renewAt: now + 0.8 * (expires - now) });
    return status.token;
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
    const logPath = join(state.dir, `${c.name}.log`);
    const log = openSync(logPath, "a");
    let child: ChildProcess;
    if (c.plan.container !== undefined) {
      // The real kubelet's (dockershim's) container name: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>.
      c.podmanName = `k8s_${c.name}_${state.name}_${state.namespace}_${state.uid}_${c.restarts}`;
      c.cidfile = join(state.dir, `${c.name}.cid`);
      c.containerId = undefined;
      rmSync(c.cidfile, { force: true });
      const args = podmanRunArgs(c.plan.container, {
        name: c.podmanName,
        cidfile: c.cidfile,
        labels: {
          [kubeletLabel]: this.runId ?? "",
          "io.kubernetes.pod.namespace": state.namespace,
          "io.kubernetes.pod.name": state.name,
          "io.kubernetes.pod.uid": state.uid,
          "io.kubernetes.container.name": c.name,
        },
      });
      child = spawn("podman", args, { cwd: repoRoot, stdio: ["ignore", log, log] });
    } else {
      const { command, args, env } = c.plan.process;
      child = spawn(command, args, { cwd: repoRoot, env, stdio: ["ignore", log, log] });
      const pid = child.pid;
      if (pid !== undefined) {
        this.reaper?.track(pid);
        child.once("exit", () => this.reaper?.untrack(pid));
      }
    }
    closeSync(log); // the child has its own copy
    c.child = child;
    c.startedAt = new Date().toISOString();
    c.ready = false;
    this.log("container started", {
      pod: `${state.namespace}/${state.name}`,
      container: c.name,
      ...(c.podmanName
        ? { podman: c.podmanName, image: c.plan.container?.imageName, id: c.plan.container?.image }
        : {}),
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
        const ready = response !== undefined && response.status >= 200 && response.status < 400;
        if (ready && !c.ready && c.startedAt !== undefined) {
          this.log("container ready", {
            pod: `${state.namespace}/${state.name}`,
            container: c.name,
            startToReadyMs: Date.now() - Date.parse(c.startedAt),
          });
        }
        c.ready = ready;
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
      const id = this.containerId(c);
      return {
        name: c.name,
        image,
        imageID: !c.plan.ok
          ? ""
          : c.plan.container
            ? `${c.plan.container.imageName.replace(/:[^:/]*$/, "")}@${c.imageId ?? ""}`
            : `process://${c.plan.kind}`,
        ...(c.plan.ok && c.plan.container
          ? id !== undefined
            ? { containerID: `podman://${id}` }
            : {}
          : c.child?.pid
            ? { containerID: `process://${c.child.pid}` }
            : {}),
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

  /** A container's podman id, once podman has written it. */
  private containerId(c: RunningContainer): string | undefined {
    if (c.containerId === undefined && c.cidfile !== undefined && c.child !== undefined) {
      try {
        c.containerId = readFileSync(c.cidfile, "utf8").trim() || undefined;
      } catch {
        // not created yet
      }
    }
    return c.containerId;
  }

  private async stopPod(state: PodState, pod?: V1Pod): Promise<void> {
    state.stopping = true;
    // The Pod's grace period, at most 10s here (the test waits on it).
    const grace = Math.min(
      10,
      pod?.metadata?.deletionGracePeriodSeconds ?? pod?.spec?.terminationGracePeriodSeconds ?? 10,
    );
    await Promise.all(
      state.containers.map(async (c) => {
        const child = c.child;
        if (c.podmanName !== undefined) {
          await stopContainer(c.podmanName, child, grace);
          return;
        }
        if (child === undefined) return;
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), grace * 1000);
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

function writeIfChanged(path: string, content: string, mode: number): void {
  try {
    if (readFileSync(path, "utf8") === content) {
      if ((statSync(path).mode & 0o777) !== mode) chmodSync(path, mode);
      return;
    }
  } catch {
    // new file
  }
  // Write-then-rename, so a reader never sees half a file (the exporter watches the folder).
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode); // past the umask
  renameSync(tmp, path);
}

/** ConfigMap, Secret, downward API and projected volumes are always mounted read-only by a kubelet. */
function readOnlyVolume(pod: V1Pod, name: string): boolean {
  const v = pod.spec?.volumes?.find((x) => x.name === name);
  return v !== undefined && !!(v.configMap || v.secret || v.downwardAPI || v.projected);
}
