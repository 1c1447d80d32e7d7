// Wires informers → work queue → reconcile. Events only enqueue keys; the
// reconciler reads the caches and converges (level-triggered). Owned objects
// and Coder Deployments map back to the CoderMetrics that cares about them.
import type * as k8s from "@kubernetes/client-node";
import type { V1ConfigMap, V1Deployment, V1Service } from "@kubernetes/client-node";
import { apiVersion, type CoderMetrics, kind, plural } from "../api/v1alpha1.ts";
import { type MonitorKind, type MonitorObject, monitoringApiVersion } from "../desired/monitor.ts";
import { instanceAnnotation, instanceLabel, managedBy, managedByLabel } from "../desired/names.ts";
import type { PrometheusLike } from "../discovery/prometheus-selection.ts";
import { createEventRecorder } from "./events.ts";
import { type InformerEvent, ResilientInformer, type ResourceType } from "./informers.ts";
import { Kube } from "./kube.ts";
import { reuseConnections } from "./kube-config.ts";
import type { Logger } from "../common/log.ts";
import { type ControllerMetrics, createControllerMetrics } from "./metrics.ts";
import { WorkQueue } from "./queue.ts";
import { type ClusterState, reconcile } from "./reconcile.ts";

export interface ControllerOptions {
  kubeconfig: k8s.KubeConfig;
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
}

const types = {
  coderMetrics: { apiVersion, kind, plural },
  deployment: { apiVersion: "apps/v1", kind: "Deployment", plural: "deployments" },
  service: { apiVersion: "v1", kind: "Service", plural: "services" },
  configMap: { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps" },
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
  start(): Promise<unknown> {
    return Promise.all(this.parts.map((p) => p.start()));
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
  readonly metrics: ControllerMetrics;
  readonly kube: Kube;
  private readonly options: ControllerOptions;
  private readonly log: Logger;
  private readonly queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 300_000 });
  private readonly coderMetrics: Informers<CoderMetrics & k8s.KubernetesObject>;
  private readonly deployments: Informers<V1Deployment>;
  private readonly services: Informers<V1Service>;
  private readonly configMaps: Informers<V1ConfigMap>;
  private monitors: Partial<Record<MonitorKind, Informers<MonitorObject & k8s.KubernetesObject>>> =
    {};
  /** Started once, the first time a reconcile asks (undefined inside: the CRDs are not served). */
  private prometheusInformers: Promise<Informers<PrometheusObject>[] | undefined> | undefined;
  private prometheusForbiddenUntil = 0;
  private readonly namespaceLabelCache = new Map<
    string,
    { at: number; labels: Record<string, string> }
  >();
  private readonly discovery = new Map<string, { at: number; served: Promise<boolean> }>();
  private resyncTimer: NodeJS.Timeout | undefined;
  private workers: Promise<void>[] = [];
  private started = false;
  private stopping = false;
  /** Reconciles finished, for tests and the benchmark. */
  reconciled = 0;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.log = options.log;
    this.metrics = options.metrics ?? createControllerMetrics();
    this.kube = new Kube(reuseConnections(options.kubeconfig), this.metrics);
    const ownedSelector = `${managedByLabel}=${managedBy}`;
    this.coderMetrics = this.informers(types.coderMetrics, undefined, (_e, cr) =>
      this.enqueueObject(cr),
    );
    this.deployments = this.informers(types.deployment, undefined, (_e, d) => this.onDeployment(d));
    this.services = this.informers(types.service, ownedSelector, (_e, o) => this.enqueueOwner(o));
    this.configMaps = this.informers(types.configMap, ownedSelector, (_e, o) =>
      this.enqueueOwner(o),
    );
  }

  private informers<T extends k8s.KubernetesObject>(
    type: ResourceType,
    labelSelector: string | undefined,
    onEvent: (event: InformerEvent, obj: T) => void,
    clusterWide = false,
  ): Informers<T> {
    const namespaces =
      clusterWide || !this.options.watchNamespaces?.length
        ? [undefined]
        : this.options.watchNamespaces;
    return new Informers(
      namespaces.map(
        (namespace) =>
          new ResilientInformer<T>(
            this.kube,
            type,
            { namespace, labelSelector, log: this.log },
            onEvent,
          ),
      ),
    );
  }

  private enqueueObject(obj: k8s.KubernetesObject): void {
    if (obj.metadata?.namespace && obj.metadata.name)
      this.queue.add(`${obj.metadata.namespace}/${obj.metadata.name}`);
    this.metrics.queueDepth.set(this.queue.length);
  }

  private enqueueOwner(obj: k8s.KubernetesObject): void {
    const owner = obj.metadata?.labels?.[instanceLabel];
    if (owner && obj.metadata?.namespace) this.queue.add(`${obj.metadata.namespace}/${owner}`);
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

  /** No key queued or being reconciled. */
  get idle(): boolean {
    return this.queue.idle;
  }

  /** Is a monitoring.coreos.com resource served? Cached; starts its informers the first time it is. */
  private served(groupVersion: string, resource: string): Promise<boolean> {
    const key = `${groupVersion}/${resource}`;
    const ttl = this.options.discoveryTtlMs ?? 30_000;
    const cached = this.discovery.get(key);
    if (cached !== undefined && Date.now() - cached.at < ttl) return cached.served;
    const served = this.kube.serves(groupVersion, resource).catch((err: unknown) => {
      this.discovery.delete(key);
      throw err;
    });
    this.discovery.set(key, { at: Date.now(), served });
    return served;
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
    const informers = [
      ...(prom
        ? [
            this.informers<PrometheusObject>(
              types.prometheus,
              undefined,
              () => this.enqueueAll(),
              true,
            ),
          ]
        : []),
      ...(agent
        ? [
            this.informers<PrometheusObject>(
              types.prometheusAgent,
              undefined,
              () => this.enqueueAll(),
              true,
            ),
          ]
        : []),
    ];
    try {
      await Promise.all(informers.map((i) => i.start()));
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

  private async monitorInformer(monitorKind: MonitorKind): Promise<void> {
    if (this.monitors[monitorKind] !== undefined) return;
    const type = monitorKind === "ServiceMonitor" ? types.serviceMonitor : types.podMonitor;
    const informers = this.informers<MonitorObject & k8s.KubernetesObject>(
      type,
      `${managedByLabel}=${managedBy}`,
      (_e, o) => this.enqueueOwner(o),
    );
    this.monitors[monitorKind] = informers;
    informers.start().catch((err: unknown) =>
      this.log.warn("monitor informer failed to start", {
        kind: monitorKind,
        error: String(err),
      }),
    );
  }

  private readonly state: ClusterState = {
    coderMetrics: (namespace, name) =>
      this.coderMetrics.get(name, namespace) as CoderMetrics | undefined,
    deployments: (namespace) => this.deployments.list(namespace),
    ownedService: (namespace, name) => this.services.get(name, namespace),
    ownedConfigMap: (namespace, name) => this.configMaps.get(name, namespace),
    monitoringServes: async (monitorKind) => {
      const served = await this.served(
        monitoringApiVersion,
        monitorKind === "ServiceMonitor" ? "servicemonitors" : "podmonitors",
      );
      if (served && !this.stopping) await this.monitorInformer(monitorKind);
      return served;
    },
    ownedMonitor: (monitorKind, namespace, name) => {
      const informers = this.monitors[monitorKind];
      if (informers === undefined) return "unknown";
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
      // A short-lived cache: Discovered needs namespace labels, and a resync should not GET each one.
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

  /** Starts the caches, waits for them to fill, then the workers. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const began = Date.now();
    await Promise.all([
      this.coderMetrics.start(),
      this.deployments.start(),
      this.services.start(),
      this.configMaps.start(),
    ]);
    this.log.info("caches synced", {
      ms: Date.now() - began,
      namespaces: this.options.watchNamespaces?.join(",") || "all",
    });
    const events = createEventRecorder(
      this.kube,
      this.log,
      this.options.identity ?? "coder-metrics",
    );
    const ctx = {
      kube: this.kube,
      state: this.state,
      events,
      log: this.log,
      exporterImage: this.options.exporterImage,
      allowedExporterImages: this.options.allowedExporterImages ?? [],
      ...(this.options.recheckMs !== undefined ? { recheckMs: this.options.recheckMs } : {}),
    };
    for (let i = 0; i < (this.options.workers ?? 2); i++) this.workers.push(this.work(ctx));
    this.enqueueAll();
    const resync = this.options.resyncMs ?? 600_000;
    this.resyncTimer = setInterval(() => this.enqueueAll(), resync);
    this.resyncTimer.unref();
  }

  private async work(ctx: Parameters<typeof reconcile>[1]): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.queueDepth.set(this.queue.length);
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
        const conflict = (err as { status?: number }).status === 409;
        const delay = this.queue.addRateLimited(key);
        this.metrics.reconciles.inc({ result: conflict ? "requeue" : "error" });
        // A conflict means our cache was behind; the retry sees the new object.
        (conflict ? this.log.debug : this.log.error)("reconcile failed", {
          coderMetrics: key,
          error: err instanceof Error ? err.message : String(err),
          retryInMs: delay,
        });
      } finally {
        end();
        this.reconciled++;
        this.queue.done(key);
      }
    }
  }

  /** Stops workers (letting a running reconcile finish) and the caches. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers);
    const prometheus = (await this.prometheusInformers?.catch(() => undefined)) ?? [];
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
