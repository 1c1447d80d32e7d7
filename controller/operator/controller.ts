// Wires informers → work queue → reconcile. Events only enqueue keys; the
// reconciler reads the caches and converges (level-triggered). Owned objects
// map back to their CoderMetrics by ownerReference (the label only as a
// fallback: users can edit labels), Coder Deployments by our annotation and
// by namespace. Nothing is reconciled before every cache has synced
// (controller-runtime waits up to CacheSyncTimeout, 2 minutes by default,
// and fails the start when it passes).
// Services and monitors are cached whether ours or not, so "is that name
// taken?" is answered from the cache, never by a GET; the caches keep only
// what the reconciler reads (no managedFields but our own Apply entry on
// Deployments, no Deployment status), as client-go's transforms do.
import type * as k8s from "@kubernetes/client-node";
import type { V1ConfigMap, V1Deployment, V1Namespace, V1Service } from "@kubernetes/client-node";
import { resolveSpec } from "../api/defaults.ts";
import { apiVersion, type CoderMetrics, group, kind, plural } from "../api/v1alpha1.ts";
import { type MonitorKind, type MonitorObject, monitoringApiVersion } from "../desired/monitor.ts";
import {
  fieldManager,
  instanceAnnotation,
  instanceLabel,
  managedBy,
  managedByLabel,
} from "../desired/names.ts";
import type { PrometheusLike } from "../discovery/prometheus-selection.ts";
import { createEventRecorder, type FlushableEventRecorder } from "./events.ts";
import { type InformerEvent, ResilientInformer, type ResourceType } from "./informers.ts";
import { Kube, KubeError } from "./kube.ts";
import { type ClusterAccess, type KubeConfigLike, KubeTransport } from "./kube-config.ts";
import type { Logger } from "../common/log.ts";
import { type ControllerMetrics, createControllerMetrics } from "./metrics.ts";
import { WorkQueue } from "./queue.ts";
import {
  type ClusterState,
  monitorKinds,
  needsNamespaceLabels,
  reconcile,
  RefusedByApi,
} from "./reconcile.ts";

export interface ControllerOptions {
  /** A client-node KubeConfig, or what loadClusterAccess() read. */
  kubeconfig: KubeConfigLike | ClusterAccess;
  /** Namespaces to watch; empty or undefined = all. */
  watchNamespaces?: string[] | undefined;
  exporterImage: string;
  /** Images beyond exporterImage's repository that a CoderMetrics may ask for (globs, prefixes). */
  allowedExporterImages?: readonly string[];
  log: Logger;
  metrics?: ControllerMetrics;
  identity?: string;
  workers?: number;
  /** Every CoderMetrics is reconciled at least this often. */
  resyncMs?: number;
  /** How long a discovery answer (is the ServiceMonitor CRD served?) is trusted. */
  discoveryTtlMs?: number;
  /** How soon to look again while waiting for a Deployment or the monitoring CRDs. */
  recheckMs?: number;
  /** Deadline of every API request (default 30 s). */
  requestTimeoutMs?: number;
  /** How long start() waits for the caches' first lists before it fails (default 2 min). */
  cacheSyncTimeoutMs?: number;
  /** Watches are asked to end after [t, 2t) and dropped when silent longer (default 5 min). */
  watchTimeoutMs?: number;
  /** The leader's fence (LeaderElector.workDeadline): no request runs past it. */
  workDeadline?: () => number;
}

const types = {
  coderMetrics: { apiVersion, kind, plural },
  deployment: { apiVersion: "apps/v1", kind: "Deployment", plural: "deployments" },
  service: { apiVersion: "v1", kind: "Service", plural: "services" },
  configMap: { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps" },
  namespace: { apiVersion: "v1", kind: "Namespace", plural: "namespaces" },
  serviceMonitor: {
    apiVersion: monitoringApiVersion,
    kind: "ServiceMonitor",
    plural: "servicemonitors",
  },
  podMonitor: { apiVersion: monitoringApiVersion, kind: "PodMonitor", plural: "podmonitors" },
  prometheus: { apiVersion: monitoringApiVersion, kind: "Prometheus", plural: "prometheuses" },
  prometheusAgent: {
    apiVersion: "monitoring.coreos.com/v1alpha1",
    kind: "PrometheusAgent",
    plural: "prometheusagents",
  },
} satisfies Record<string, ResourceType>;

type PrometheusObject = k8s.KubernetesObject & {
  spec?: Pick<
    PrometheusLike,
    | "serviceMonitorSelector"
    | "serviceMonitorNamespaceSelector"
    | "podMonitorSelector"
    | "podMonitorNamespaceSelector"
  >;
};

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration";

/** What every cache keeps of an object: not its managedFields nor kubectl's last-applied copy. */
function trimmed<T extends k8s.KubernetesObject>(obj: T): T {
  if (obj.metadata !== undefined) {
    delete obj.metadata.managedFields;
    if (obj.metadata.annotations?.[lastApplied] !== undefined)
      delete obj.metadata.annotations[lastApplied];
  }
  return obj;
}

/** A Deployment as the reconciler reads it: our own Apply entry (ownedEnvNames), no status. */
function trimmedDeployment(d: V1Deployment): V1Deployment {
  const ours = d.metadata?.managedFields?.filter(
    (e) => e.manager === fieldManager && e.operation === "Apply" && !e.subresource,
  );
  trimmed(d);
  if (d.metadata !== undefined && ours?.length) d.metadata.managedFields = ours;
  delete d.status;
  return d;
}

/** A Namespace as the reconciler reads it: its labels. */
function namespaceLabelsOnly(ns: V1Namespace): V1Namespace {
  const { name, labels, resourceVersion } = ns.metadata ?? {};
  return { apiVersion: ns.apiVersion, kind: ns.kind, metadata: { name, labels, resourceVersion } };
}

type Versioned = { metadata?: { resourceVersion?: string | undefined } | undefined };

/** Whether `a` is a later version than `b` (resourceVersions as integers, as client-go's MutationCache). */
function newer(a: Versioned, b: Versioned): boolean {
  const va = Number(a.metadata?.resourceVersion);
  const vb = Number(b.metadata?.resourceVersion);
  return Number.isSafeInteger(va) && Number.isSafeInteger(vb) && va > vb;
}

/** One informer per watched namespace (or one for the cluster), read as one cache. */
class Informers<T extends k8s.KubernetesObject> {
  readonly parts: ResilientInformer<T>[];
  constructor(parts: ResilientInformer<T>[]) {
    this.parts = parts;
  }
  list(namespace?: string): T[] {
    return this.parts.flatMap((p) =>
      p.namespace === undefined || namespace === undefined || p.namespace === namespace
        ? [...p.list(namespace)]
        : [],
    );
  }
  get(name: string, namespace: string): T | undefined {
    for (const p of this.parts) {
      if (p.namespace !== undefined && p.namespace !== namespace) continue;
      const found = p.get(name, namespace);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  start(): void {
    for (const p of this.parts) p.start();
  }
  get hasSynced(): boolean {
    return this.parts.every((p) => p.hasSynced);
  }
  waitForSync(options: { timeoutMs: number; signal?: AbortSignal; failFast?: boolean }) {
    return Promise.all(this.parts.map((p) => p.waitForSync(options)));
  }
  stop(): Promise<unknown> {
    return Promise.all(this.parts.map((p) => p.stop()));
  }
}

function keyParts(key: string): [name: string, namespace: string] {
  const [namespace = "", name = ""] = key.split("/");
  return [name, namespace];
}

export class Controller {
  private readonly metrics: ControllerMetrics;
  private readonly kube: Kube;
  private readonly options: ControllerOptions;
  private readonly log: Logger;
  private readonly queue: WorkQueue;
  /** Aborts every request in flight once the workers have stopped. */
  private readonly abort = new AbortController();
  private readonly coderMetrics: Informers<CoderMetrics & k8s.KubernetesObject>;
  private readonly deployments: Informers<V1Deployment>;
  private readonly services: Informers<V1Service>;
  private readonly configMaps: Informers<V1ConfigMap>;
  private monitors: Partial<Record<MonitorKind, Informers<MonitorObject & k8s.KubernetesObject>>> =
    {};
  /** Started once, the first time a reconcile asks (undefined inside: the CRDs are not served). */
  private prometheusInformers: Promise<Informers<PrometheusObject>[] | undefined> | undefined;
  private prometheusForbiddenUntil = 0;
  /** Monitor caches by kind: resolves once synced, or once its first list failed. */
  private readonly monitorSync: Partial<Record<MonitorKind, Promise<void>>> = {};
  /** Cluster-wide mode only, started when namespace labels are first needed. */
  private namespaces: Promise<ResilientInformer<V1Namespace> | undefined> | undefined;
  /** After a failed first list of Namespaces: when to try that cache again. */
  private namespacesRetryAt = 0;
  /**
   * CoderMetrics as our own writes (finalizer, status) returned them, read
   * instead of the cache until its watch delivers that version: otherwise the
   * reconcile our first write queued may run on the older copy and write the
   * same status (and Event) again. client-go's MutationCache does this,
   * comparing resourceVersions as integers as it does.
   */
  private readonly written = new Map<string, CoderMetrics>();
  private readonly namespaceLabelCache = new Map<
    string,
    { at: number; labels: Record<string, string> }
  >();
  private readonly discovery = new Map<string, { at: number; resources: Promise<string[]> }>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private events: FlushableEventRecorder | undefined;
  private workers: Promise<void>[] = [];
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.log = options.log;
    this.metrics = options.metrics ?? createControllerMetrics();
    this.queue = new WorkQueue({
      baseDelayMs: 200,
      maxDelayMs: 300_000,
      metrics: {
        depth: this.metrics.queueDepth,
        adds: this.metrics.queueAdds,
        retries: this.metrics.queueRetries,
        queueDuration: this.metrics.queueDuration,
      },
    });
    this.kube = new Kube(
      new KubeTransport(options.kubeconfig, {
        timeoutMs: options.requestTimeoutMs ?? 30_000,
        signal: this.abort.signal,
        deadline: options.workDeadline,
      }),
      this.metrics,
    );
    const ownedSelector = `${managedByLabel}=${managedBy}`;
    this.coderMetrics = this.informers(
      types.coderMetrics,
      undefined,
      (_e, cr) => {
        const key = `${cr.metadata?.namespace}/${cr.metadata?.name}`;
        const written = this.written.get(key);
        if (written !== undefined && !newer(written, cr as CoderMetrics)) this.written.delete(key);
        this.enqueueObject(cr);
      },
      { transform: trimmed },
    );
    this.deployments = this.informers(
      types.deployment,
      undefined,
      (_e, d) => this.onDeployment(d),
      {
        transform: trimmedDeployment,
      },
    );
    this.services = this.informers(types.service, undefined, (_e, o) => this.onNamedObject(o), {
      transform: trimmed,
    });
    this.configMaps = this.informers(
      types.configMap,
      ownedSelector,
      (_e, o) => this.enqueueOwner(o),
      { transform: trimmed },
    );
  }

  private informers<T extends k8s.KubernetesObject>(
    type: ResourceType,
    labelSelector: string | undefined,
    onEvent: (event: InformerEvent, obj: T) => void,
    options: { clusterWide?: boolean; transform?: (obj: T) => T } = {},
  ): Informers<T> {
    const namespaces =
      options.clusterWide || !this.options.watchNamespaces?.length
        ? [undefined]
        : this.options.watchNamespaces;
    return new Informers(
      namespaces.map(
        (namespace) =>
          new ResilientInformer<T>(
            this.kube,
            type,
            {
              namespace,
              labelSelector,
              log: this.log,
              watchTimeoutMs: this.options.watchTimeoutMs,
              transform: options.transform,
            },
            onEvent,
          ),
      ),
    );
  }

  private enqueueObject(obj: k8s.KubernetesObject): void {
    if (obj.metadata?.namespace && obj.metadata.name)
      this.queue.add(`${obj.metadata.namespace}/${obj.metadata.name}`);
  }

  /** An owned object changed: its controlling CoderMetrics (ownerReference; else our label). */
  private enqueueOwner(obj: k8s.KubernetesObject): boolean {
    const namespace = obj.metadata?.namespace;
    if (!namespace) return false;
    const owner =
      obj.metadata?.ownerReferences?.find(
        (r) => r.controller && r.kind === kind && r.apiVersion.split("/")[0] === group,
      )?.name ?? obj.metadata?.labels?.[instanceLabel];
    if (!owner) return false;
    this.queue.add(`${namespace}/${owner}`);
    return true;
  }

  /**
   * A Service or monitor changed. Ours: its CoderMetrics. Someone else's: the
   * CoderMetrics whose Service name it takes (or has just freed) looks again.
   */
  private onNamedObject(obj: k8s.KubernetesObject): void {
    if (this.enqueueOwner(obj)) return;
    const namespace = obj.metadata?.namespace;
    if (namespace === undefined) return;
    for (const cr of this.coderMetrics.list(namespace))
      if (resolveSpec(cr.spec).service.name === obj.metadata?.name) this.enqueueObject(cr);
  }

  private onDeployment(d: V1Deployment): void {
    const namespace = d.metadata?.namespace;
    if (namespace === undefined) return;
    const claim = d.metadata?.annotations?.[instanceAnnotation];
    if (claim) this.queue.add(claim);
    for (const cr of this.coderMetrics.list(namespace)) this.enqueueObject(cr);
  }

  private enqueueAll(): void {
    for (const cr of this.coderMetrics.list()) this.enqueueObject(cr);
  }

  /** Queues every CoderMetrics now (what the periodic resync does). */
  resync(): void {
    this.enqueueAll();
  }

  /** Is a monitoring.coreos.com resource served? One discovery request per group/version, cached. */
  private async served(groupVersion: string, resource: string): Promise<boolean> {
    const ttl = this.options.discoveryTtlMs ?? 30_000;
    let cached = this.discovery.get(groupVersion);
    if (cached === undefined || Date.now() - cached.at >= ttl) {
      const resources = this.kube.resourcesOf(groupVersion).catch((err: unknown) => {
        this.discovery.delete(groupVersion);
        throw err;
      });
      cached = { at: Date.now(), resources };
      this.discovery.set(groupVersion, cached);
    }
    return (await cached.resources).includes(resource);
  }

  private async startPrometheusInformers(): Promise<Informers<PrometheusObject>[] | undefined> {
    const [prom, agent] = await Promise.all([
      this.served(monitoringApiVersion, "prometheuses"),
      this.served("monitoring.coreos.com/v1alpha1", "prometheusagents"),
    ]);
    if (!prom && !agent) {
      // Not served now; ask discovery again next time (its answer is cached for a while).
      this.prometheusInformers = undefined;
      return undefined;
    }
    // An informer whose list is forbidden would retry forever: ask once first.
    try {
      const probe = prom ? types.prometheus : types.prometheusAgent;
      await this.kube.list(probe.apiVersion, probe.kind);
    } catch (err) {
      if ((err as { status?: number }).status === 403) {
        this.prometheusForbiddenUntil = Date.now() + 300_000;
        this.prometheusInformers = undefined;
        this.log.info(
          "not allowed to list Prometheus resources cluster-wide; Discovered stays Unknown",
          {},
        );
        return undefined;
      }
      throw err;
    }
    // A Prometheus changed: every monitor may be selected differently. Not for the first
    // list: the reconcile that asked reads the answer, the others will when they run.
    let synced = false;
    const onEvent = () => {
      if (synced) this.enqueueAll();
    };
    const cached = { clusterWide: true, transform: trimmed };
    const informers = [
      ...(prom
        ? [this.informers<PrometheusObject>(types.prometheus, undefined, onEvent, cached)]
        : []),
      ...(agent
        ? [this.informers<PrometheusObject>(types.prometheusAgent, undefined, onEvent, cached)]
        : []),
    ];
    try {
      for (const i of informers) i.start();
      // Fail fast on a refused list: Discovered says Unknown rather than the reconcile waiting.
      await Promise.all(
        informers.map((i) =>
          i.waitForSync({
            timeoutMs: this.options.cacheSyncTimeoutMs ?? 120_000,
            signal: this.abort.signal,
            failFast: true,
          }),
        ),
      );
      synced = true;
    } catch (err) {
      await Promise.all(informers.map((i) => i.stop()));
      this.log.warn("cannot list Prometheus resources; Discovered stays Unknown", {
        error: String(err),
      });
      this.prometheusInformers = undefined;
      return undefined;
    }
    return informers;
  }

  /**
   * Starts the cache of one monitor kind the first time a reconcile needs it and
   * waits for its first list; if that list fails, the cache keeps retrying in the
   * background and monitor() answers "unknown" (the reconcile reads) meanwhile.
   */
  private monitorInformer(monitorKind: MonitorKind): Promise<void> {
    this.monitorSync[monitorKind] ??= (() => {
      const type = monitorKind === "ServiceMonitor" ? types.serviceMonitor : types.podMonitor;
      const informers = this.informers<MonitorObject & k8s.KubernetesObject>(
        type,
        undefined,
        (_e, o) => this.onNamedObject(o),
        { transform: trimmed },
      );
      this.monitors[monitorKind] = informers;
      informers.start();
      return informers
        .waitForSync({
          timeoutMs: this.options.cacheSyncTimeoutMs ?? 120_000,
          signal: this.abort.signal,
          failFast: true,
        })
        .then(
          () => undefined,
          (err: unknown) =>
            this.log.warn("cannot list monitors yet; reading them one by one meanwhile", {
              kind: monitorKind,
              error: err instanceof Error ? err.message : String(err),
            }),
        );
    })();
    return this.monitorSync[monitorKind];
  }

  /**
   * The namespaces cache (labels only), in cluster-wide mode; undefined when
   * the controller watches some namespaces only (their Namespaces are read one
   * by one) or may not list Namespaces.
   */
  private namespaceInformer(): Promise<ResilientInformer<V1Namespace> | undefined> {
    if (this.namespaces === undefined && Date.now() < this.namespacesRetryAt)
      return Promise.resolve(undefined);
    this.namespaces ??= (async () => {
      if (this.options.watchNamespaces?.length) return undefined;
      const informer: ResilientInformer<V1Namespace> = new ResilientInformer<V1Namespace>(
        this.kube,
        types.namespace,
        {
          log: this.log,
          watchTimeoutMs: this.options.watchTimeoutMs,
          transform: namespaceLabelsOnly,
        },
        (_e, ns) => {
          // Relabelled: Discovered may change for the CoderMetrics in it.
          if (!informer.hasSynced || ns.metadata?.name === undefined) return;
          for (const cr of this.coderMetrics.list(ns.metadata.name)) this.enqueueObject(cr);
        },
      );
      informer.start();
      try {
        await informer.waitForSync({
          timeoutMs: this.options.cacheSyncTimeoutMs ?? 120_000,
          signal: this.abort.signal,
          failFast: true,
        });
        return informer;
      } catch (err) {
        await informer.stop();
        this.log.info("cannot list Namespaces; reading their labels one by one for a while", {
          error: err instanceof Error ? err.message : String(err),
        });
        this.namespacesRetryAt = Date.now() + 300_000;
        this.namespaces = undefined;
        return undefined;
      }
    })();
    return this.namespaces;
  }

  private readonly state: ClusterState = {
    coderMetrics: (namespace, name) => {
      const cached = this.coderMetrics.get(name, namespace) as CoderMetrics | undefined;
      const key = `${namespace}/${name}`;
      const written = this.written.get(key);
      if (written === undefined) return cached;
      if (cached === undefined || !newer(written, cached)) {
        this.written.delete(key); // gone, or the cache has caught up
        return cached;
      }
      return written;
    },
    wrote: (cr) => {
      const key = `${cr.metadata.namespace}/${cr.metadata.name}`;
      const cached = this.coderMetrics.get(cr.metadata.name, cr.metadata.namespace);
      if (cached !== undefined && newer(cr, cached as CoderMetrics)) this.written.set(key, cr);
    },
    deployments: (namespace) => this.deployments.list(namespace),
    service: (namespace, name) => this.services.get(name, namespace),
    ownedConfigMap: (namespace, name) => this.configMaps.get(name, namespace),
    monitoringServes: async (monitorKind) => {
      const served = await this.served(
        monitoringApiVersion,
        monitorKind === "ServiceMonitor" ? "servicemonitors" : "podmonitors",
      );
      if (served && this.stopping === undefined) await this.monitorInformer(monitorKind);
      return served;
    },
    monitor: (monitorKind, namespace, name) => {
      const informers = this.monitors[monitorKind];
      if (informers === undefined || !informers.hasSynced) return "unknown";
      return informers.get(name, namespace);
    },
    prometheuses: async () => {
      const forbidden = {
        reason: "PrometheusNotReadable",
        unknown:
          "the controller may not list Prometheus resources cluster-wide (namespaced RBAC), so it cannot tell which Prometheus selects the monitor",
      };
      if (Date.now() < this.prometheusForbiddenUntil) return forbidden;
      this.prometheusInformers ??= this.startPrometheusInformers().catch((err: unknown) => {
        this.prometheusInformers = undefined; // try again on a later reconcile
        throw err;
      });
      const informers = await this.prometheusInformers;
      if (informers === undefined) {
        if (Date.now() < this.prometheusForbiddenUntil) return forbidden;
        return {
          reason: "PrometheusCRDNotServed",
          unknown: "monitoring.coreos.com Prometheus is not served, or not readable",
        };
      }
      return informers.flatMap((i) =>
        i.list().map((p) => ({
          kind:
            p.kind === "PrometheusAgent" ? ("PrometheusAgent" as const) : ("Prometheus" as const),
          namespace: p.metadata?.namespace ?? "",
          name: p.metadata?.name ?? "",
          serviceMonitorSelector: p.spec?.serviceMonitorSelector ?? undefined,
          serviceMonitorNamespaceSelector: p.spec?.serviceMonitorNamespaceSelector ?? undefined,
          podMonitorSelector: p.spec?.podMonitorSelector ?? undefined,
          podMonitorNamespaceSelector: p.spec?.podMonitorNamespaceSelector ?? undefined,
        })),
      );
    },
    namespaceLabels: async (namespace) => {
      const informer = await this.namespaceInformer();
      if (informer !== undefined)
        return (
          informer.get(namespace)?.metadata?.labels ?? {
            "kubernetes.io/metadata.name": namespace,
          }
        );
      // Namespaced mode: a short-lived cache, so a resync does not GET each one.
      const cached = this.namespaceLabelCache.get(namespace);
      if (cached !== undefined && Date.now() - cached.at < (this.options.discoveryTtlMs ?? 30_000))
        return cached.labels;
      let labels: Record<string, string>;
      try {
        labels = await this.kube.namespaceLabels(namespace);
      } catch {
        labels = { "kubernetes.io/metadata.name": namespace }; // not allowed to read Namespaces: the label every namespace has
      }
      this.namespaceLabelCache.set(namespace, { at: Date.now(), labels });
      return labels;
    },
  };

  /** Every cache has its first list (what /readyz reports). */
  get hasSynced(): boolean {
    return [this.coderMetrics, this.deployments, this.services, this.configMaps].every(
      (i) => i.hasSynced,
    );
  }

  /**
   * Starts the caches, waits until each has synced, then starts the workers.
   * Rejects when the caches do not sync within cacheSyncTimeoutMs (or stop()
   * is called meanwhile): nothing has been reconciled then.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const began = Date.now();
    const caches = [this.coderMetrics, this.deployments, this.services, this.configMaps];
    for (const cache of caches) cache.start();
    const timeoutMs = this.options.cacheSyncTimeoutMs ?? 120_000;
    this.log.info("waiting for caches to sync", { timeoutMs });
    try {
      await Promise.all(caches.map((c) => c.waitForSync({ timeoutMs, signal: this.abort.signal })));
    } catch (err) {
      throw new Error(
        `caches did not sync: ${err instanceof Error ? err.message : String(err)}; nothing was reconciled`,
      );
    }
    if (this.stopping !== undefined) return;
    this.log.info("caches synced", {
      ms: Date.now() - began,
      namespaces: this.options.watchNamespaces?.join(",") || "all",
    });
    const events = createEventRecorder(
      this.kube,
      this.log,
      this.options.identity ?? "coder-metrics",
    );
    this.events = events;
    const ctx = {
      kube: this.kube,
      state: this.state,
      events,
      log: this.log,
      exporterImage: this.options.exporterImage,
      allowedExporterImages: this.options.allowedExporterImages ?? [],
      ...(this.options.recheckMs !== undefined ? { recheckMs: this.options.recheckMs } : {}),
    };
    // What the first reconciles ask before anything else, asked now: which monitor kinds are
    // served (their caches start then) and which Prometheus objects there are.
    for (const monitorKind of monitorKinds)
      this.state.monitoringServes(monitorKind).catch(() => undefined);
    this.state
      .prometheuses()
      .then((p) => {
        if (Array.isArray(p) && monitorKinds.some((k) => needsNamespaceLabels(p, k)))
          return this.namespaceInformer();
      })
      .catch(() => undefined);
    for (let i = 0; i < (this.options.workers ?? 4); i++) this.workers.push(this.work(ctx));
    this.enqueueAll();
    const resync = this.options.resyncMs ?? 600_000;
    this.resyncTimer = setInterval(() => this.enqueueAll(), resync);
    this.resyncTimer.unref();
  }

  private async work(ctx: Parameters<typeof reconcile>[1]): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.activeWorkers.inc();
      const end = this.metrics.reconcileDuration.startTimer();
      try {
        const result = await reconcile(key, { ...ctx, log: this.log.with({ coderMetrics: key }) });
        this.queue.forget(key);
        this.metrics.reconciles.inc({ result: "success" });
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        if (result.writes > 0)
          this.log.info("reconciled", { coderMetrics: key, writes: result.writes });
      } catch (err) {
        if (
          (err as { status?: number }).status === 404 &&
          this.coderMetrics.get(...keyParts(key)) === undefined
        ) {
          // The CoderMetrics went away while we worked on it: nothing left to do.
          this.queue.forget(key);
          continue;
        }
        // A conflict on our own guarded patch means our cache was behind; the retry sees the
        // new object. A refused apply is in the CR's status and Events already.
        const conflict = err instanceof KubeError && err.status === 409;
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ result: conflict ? "requeue" : "error" });
        const log = conflict
          ? this.log.debug
          : err instanceof RefusedByApi
            ? this.log.warn
            : this.log.error;
        log("reconcile failed", {
          coderMetrics: key,
          error: err instanceof Error ? err.message : String(err),
          retryInMs: delay,
        });
      } finally {
        end();
        this.metrics.activeWorkers.dec();
        this.queue.done(key);
      }
    }
  }

  /**
   * Stops the workers (a running reconcile finishes, each of its requests
   * bounded by the request deadline), then aborts whatever is still in flight
   * and stops the caches. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await this.events?.flush(); // nothing of this replica's may land after it stopped
    this.abort.abort();
    const prometheus = (await this.prometheusInformers?.catch(() => undefined)) ?? [];
    await (await this.namespaces)?.stop();
    const all = [
      this.coderMetrics,
      this.deployments,
      this.services,
      this.configMaps,
      ...Object.values(this.monitors),
      ...prometheus,
    ];
    await Promise.all(all.map((i) => i?.stop()));
  }
}
