// One reconcile of one CoderMetrics: read the cached state, compute the
// desired objects with the pure functions in desired/, apply only what
// differs, and report what happened in status. Level-triggered: the key is
// all it gets; whatever event enqueued it does not matter.
// Requests: one per object that differs, the status when it changed, and
// Events only for what a user should hear of — Ready changing, a refusal, an
// invalid config, a Deployment given back — never for a routine apply.
// Independent steps run side by side: the exporter's ConfigMap beside the
// Deployments; the Service waits for the Deployments (it selects the pods
// they configure, on their port) and the monitor for the Service.
import type { V1ConfigMap, V1Deployment, V1Service } from "@kubernetes/client-node";
import { resolveSpec } from "../api/defaults.ts";
import {
  apiVersion,
  type CoderMetrics,
  type CoderMetricsSpec,
  type CoderMetricsStatus,
  group,
  kind,
  plural,
  version,
} from "../api/v1alpha1.ts";
import type { CoderAddress } from "../desired/coder-address.ts";
import { planCoderd, releaseCoderd, respectedMessage } from "../desired/coderd.ts";
import { isUpToDate, stampDigest } from "../desired/digest.ts";
import { desiredExporterConfigMap, planExporterConfig } from "../desired/exporter-config.ts";
import { checkExporterImage } from "../desired/image-policy.ts";
import {
  desiredMonitor,
  type MonitorKind,
  type MonitorObject,
  monitoringApiVersion,
} from "../desired/monitor.ts";
import {
  exporterConfigMapName,
  fieldManager,
  finalizer,
  instanceAnnotation,
  instanceKey,
  instanceLabel,
} from "../desired/names.ts";
import { type PiiExposure, piiCondition } from "../desired/pii-boundary.ts";
import { kubernetesScrapeJob, scrapeConfigYaml } from "../desired/scrape-config.ts";
import { commonPodSelector, desiredService } from "../desired/service.ts";
import { matchesSelector } from "../discovery/label-selector.ts";
import { evaluateSelection, type PrometheusLike } from "../discovery/prometheus-selection.ts";
import type { EventRecorder, EventTarget } from "./events.ts";
import { type Kube, KubeError } from "./kube.ts";
import type { Logger } from "../common/log.ts";
import { ownedEnvNames } from "./managed-fields.ts";
import { type ConditionInput, mergeConditions, readyCondition, statusEqual } from "./status.ts";

/** What the reconciler reads: informer caches, so a no-op reconcile makes no requests. */
export interface ClusterState {
  coderMetrics(namespace: string, name: string): CoderMetrics | undefined;
  /** A CoderMetrics as our own write returned it: read instead of the cache until that catches up. */
  wrote(cr: CoderMetrics): void;
  deployments(namespace: string): readonly V1Deployment[];
  /** Any Service (ours or not: a name someone else took is seen in the cache). */
  service(namespace: string, name: string): V1Service | undefined;
  ownedConfigMap(namespace: string, name: string): V1ConfigMap | undefined;
  /** Is the monitoring.coreos.com kind served? (cached discovery) */
  monitoringServes(kind: MonitorKind): Promise<boolean>;
  /** The monitor of that kind and name (ours or not); "unknown" until its cache has synced. */
  monitor(
    kind: MonitorKind,
    namespace: string,
    name: string,
  ): MonitorObject | undefined | "unknown";
  /** Every Prometheus/PrometheusAgent, or why they cannot be known (CRDs not served, namespaced mode). */
  prometheuses(): Promise<PrometheusLike[] | { unknown: string; reason: string }>;
  namespaceLabels(namespace: string): Promise<Record<string, string>>;
}

export interface ReconcileContext {
  kube: Kube;
  state: ClusterState;
  events: EventRecorder;
  log: Logger;
  exporterImage: string;
  /** --allowed-exporter-images: images beyond exporterImage's repository that may be injected. */
  allowedExporterImages?: readonly string[];
  now?: () => Date;
  /** How soon to look again while waiting for a Deployment or the monitoring CRDs. */
  recheckMs?: number;
}

export interface ReconcileResult {
  /** Re-run after this long even without events (e.g. waiting for a Deployment to appear). */
  requeueAfterMs?: number;
  writes: number;
}

export const monitorKinds: MonitorKind[] = ["ServiceMonitor", "PodMonitor"];

/** An apply the API server answered with a refusal the user can act on. */
export interface Refusal {
  /** The condition of the step that wanted the write. */
  condition: ConditionInput["type"];
  /** The API's StatusReason (Forbidden, Invalid, Conflict, ...): a condition reason. */
  reason: string;
  /** Names the object and quotes the API server. */
  message: string;
}

/** Thrown after status is written, so the key backs off; the refusals are in status and Events. */
export class RefusedByApi extends Error {
  readonly refusals: Refusal[];
  constructor(key: string, refusals: Refusal[]) {
    super(`${key}: ${refusals.map((r) => r.message).join("; ")}`);
    this.name = "RefusedByApi";
    this.refusals = refusals;
  }
}

const reasonByStatus: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Gone",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
};

/**
 * Whether a failed write is the API server refusing it (RBAC, validation,
 * an admission webhook or policy, a conflict): the answer is final until
 * someone changes something, so the user must hear it. No answer, 404 (the
 * reconcile sees the deletion next), throttling and 5xx are transient and
 * only retried.
 */
export function refusalOf(
  err: unknown,
  condition: ConditionInput["type"],
  object: string,
): Refusal | undefined {
  if (!(err instanceof KubeError)) return undefined;
  const code = err.status;
  if (code < 400 || code >= 500 || code === 404 || code === 408 || code === 429) return undefined;
  // metav1.Condition's reason pattern; the API's own reason fits it, a made-up one might not.
  const reason = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/.test(err.reason)
    ? err.reason
    : (reasonByStatus[code] ?? "Refused");
  return {
    condition,
    reason,
    message: `${object}: the API server refused the change (${reason}): ${err.detail}`,
  };
}

function crTarget(cr: CoderMetrics): EventTarget {
  return {
    apiVersion,
    kind,
    name: cr.metadata.name,
    namespace: cr.metadata.namespace,
    uid: cr.metadata.uid,
  };
}

function deploymentTarget(d: V1Deployment): EventTarget {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    name: d.metadata?.name ?? "",
    namespace: d.metadata?.namespace ?? "",
    uid: d.metadata?.uid,
  };
}

function claimOf(d: V1Deployment): string | undefined {
  return d.metadata?.annotations?.[instanceAnnotation];
}

/** Whether telling which Prometheus selects a monitor of `kind` needs its namespace's labels. */
export function needsNamespaceLabels(prometheuses: PrometheusLike[], kind: MonitorKind): boolean {
  const field =
    kind === "ServiceMonitor" ? "serviceMonitorNamespaceSelector" : "podMonitorNamespaceSelector";
  // Only a selector with requirements reads labels: unset means the Prometheus's own
  // namespace, {} every namespace.
  return prometheuses.some((p) => {
    const selector = p[field];
    return (
      selector !== undefined &&
      (Object.keys(selector.matchLabels ?? {}).length > 0 ||
        (selector.matchExpressions ?? []).length > 0)
    );
  });
}

/** Both to the end (no write of a key outlives its reconcile), then the first failure if any. */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === "rejected") throw ra.reason;
  if (rb.status === "rejected") throw rb.reason;
  return [ra.value, rb.value];
}

export async function reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult> {
  const [namespace, name] = key.split("/") as [string, string];
  const cr = ctx.state.coderMetrics(namespace, name);
  if (cr === undefined) return { writes: 0 };
  const run = new Reconcile(cr, ctx);
  if (cr.metadata.deletionTimestamp) {
    await run.finalize();
    return { writes: run.writes };
  }
  return run.converge();
}

class Reconcile {
  writes = 0;
  private readonly refusals: Refusal[] = [];
  private readonly cr: CoderMetrics;
  private readonly ctx: ReconcileContext;
  private readonly key: string;
  private readonly namespace: string;

  constructor(cr: CoderMetrics, ctx: ReconcileContext) {
    this.cr = cr;
    this.ctx = ctx;
    this.key = instanceKey(cr);
    this.namespace = cr.metadata.namespace;
  }

  private async apply<T extends { kind?: string; metadata?: { name?: string } }>(desired: T) {
    await this.ctx.kube.apply(desired as never);
    this.writes++;
  }

  /** apply(), but a refusal (see refusalOf) is recorded and returned instead of thrown. */
  private async tryApply<T extends { kind?: string; metadata?: { name?: string } }>(
    desired: T,
    condition: ConditionInput["type"],
  ): Promise<Refusal | undefined> {
    try {
      await this.apply(desired);
      return undefined;
    } catch (err) {
      const object = `${desired.kind} ${this.namespace}/${desired.metadata?.name}`;
      const refusal = refusalOf(err, condition, object);
      if (refusal === undefined) throw err;
      this.refusals.push(refusal);
      return refusal;
    }
  }

  /** A step's condition for a refused write. */
  private refused(refusal: Refusal): ConditionInput {
    return {
      type: refusal.condition,
      status: "False",
      reason: refusal.reason,
      message: refusal.message,
    };
  }

  private ref(apiVersionOf: string, kindOf: string, nameOf: string) {
    return {
      apiVersion: apiVersionOf,
      kind: kindOf,
      metadata: { name: nameOf, namespace: this.namespace },
    };
  }

  async converge(): Promise<ReconcileResult> {
    const { cr, ctx } = this;
    await this.ensureFinalizer();
    const spec = resolveSpec(cr.spec);
    const parts: ConditionInput[] = [];

    // 1. Coder Deployments (env + sidecar) and 2. the exporter's config, side by side: the
    // sidecar mounts the ConfigMap, but its pods wait for it (and the kubelet retries).
    const [coder, exporter] = await both(
      this.configureDeployments(spec),
      this.configureExporter(spec),
    );
    parts.push(coder.condition);
    if (coder.pii) parts.push(coder.pii);
    parts.push(exporter);

    // 3. Service, 4. monitor.
    const serviceCondition = await this.configureService(
      spec,
      coder.coderAddress,
      coder.podSelector,
    );
    parts.push(serviceCondition);
    const monitor = await this.configureMonitor(
      spec,
      coder.coderAddress,
      coder.podSelector,
      serviceCondition.status === "True",
    );
    parts.push(monitor.condition);
    parts.push(await this.discovered(monitor.applied));

    const required = ["CoderConfigured", "ServiceReady"] as ConditionInput["type"][];
    if (coder.pii) required.push("PIIProtected");
    if (spec.exporter.enabled) required.push("ExporterReady");
    if (
      spec.monitor.mode === "ServiceMonitor" ||
      spec.monitor.mode === "PodMonitor" ||
      monitor.applied
    ) {
      required.push("ServiceMonitorReady");
    }
    const all = [readyCondition(parts, required), ...parts];
    await this.writeStatus(all, {
      deployments: coder.deployments,
      service: serviceCondition.status === "True" ? spec.service.name : undefined,
      monitor: monitor.applied,
      scrapeConfig: scrapeConfigYaml(kubernetesScrapeJob({ cr, spec })),
    });
    if (this.refusals.length > 0) {
      for (const r of this.refusals) {
        // Once per new refusal, not on every retry.
        if (this.conditionChanged(r.condition, r.reason, r.message))
          ctx.events.warning(crTarget(cr), r.reason, r.message);
      }
      throw new RefusedByApi(this.key, this.refusals); // back off; status says why
    }
    // Nothing to select yet, or no monitoring CRDs yet: look again later (no event tells us
    // a CRD was installed without watching CRDs, which would need cluster-wide RBAC).
    const waiting =
      coder.deployments.length === 0 || monitor.condition.reason === "MonitoringCRDNotInstalled";
    return waiting
      ? { requeueAfterMs: ctx.recheckMs ?? 60_000, writes: this.writes }
      : { writes: this.writes };
  }

  private async ensureFinalizer(): Promise<void> {
    const finalizers = this.cr.metadata.finalizers ?? [];
    if (finalizers.includes(finalizer)) return;
    const updated = await this.ctx.kube.mergePatch(
      this.ref(apiVersion, kind, this.cr.metadata.name),
      {
        metadata: {
          resourceVersion: this.cr.metadata.resourceVersion,
          finalizers: [...finalizers, finalizer],
        },
      },
    );
    this.ctx.state.wrote(updated as unknown as CoderMetrics);
    this.writes++;
  }

  private async configureDeployments(spec: CoderMetricsSpec): Promise<{
    condition: ConditionInput;
    deployments: NonNullable<CoderMetricsStatus["deployments"]>;
    coderAddress: CoderAddress | undefined;
    podSelector: Record<string, string>;
    pii: ConditionInput | undefined;
  }> {
    const { ctx } = this;
    const all = ctx.state.deployments(this.namespace);
    const selected = all.filter((d) => matchesSelector(spec.selector, d.metadata?.labels));
    const statuses: NonNullable<CoderMetricsStatus["deployments"]> = [];
    const problems: string[] = [];
    const configured: V1Deployment[] = [];
    const exposures: Array<{ name: string; exposure: PiiExposure | undefined }> = [];
    let coderAddress: CoderAddress | undefined;
    let refusedReason: string | undefined;

    // An image nobody allowed never enters Coder's Pod: no Deployment is touched.
    const image = checkExporterImage(spec, ctx.exporterImage, ctx.allowedExporterImages ?? []);
    if (!image.ok) {
      return {
        condition: {
          type: "CoderConfigured",
          status: "False",
          reason: "ExporterImageNotAllowed",
          message: image.message,
        },
        deployments: [],
        coderAddress: undefined,
        podSelector: { [instanceLabel]: this.cr.metadata.name },
        pii: undefined,
      };
    }

    for (const deployment of selected) {
      const dName = deployment.metadata?.name ?? "";
      const claim = claimOf(deployment);
      if (claim !== undefined && claim !== this.key && this.claimantExists(claim)) {
        const message = `already configured by CoderMetrics ${claim}`;
        statuses.push({ name: dName, coderAddress: "", configured: false, message });
        problems.push(`Deployment ${dName}: ${message}`);
        continue;
      }
      const plan = planCoderd({
        cr: this.cr,
        spec,
        deployment,
        ownedEnv: ownedEnvNames(deployment, spec.coderContainer, fieldManager),
        exporterImage: image.image,
        exporterConfigMap: exporterConfigMapName(this.cr),
      });
      if (!plan.ok) {
        statuses.push({ name: dName, coderAddress: "", configured: false, message: plan.message });
        problems.push(`Deployment ${dName}: ${plan.message}`);
        continue;
      }
      const desired = stampDigest(plan.apply);
      if (!isUpToDate(desired, deployment)) {
        const refusal = await this.tryApply(desired, "CoderConfigured");
        if (refusal !== undefined) {
          statuses.push({
            name: dName,
            coderAddress: "",
            configured: false,
            message: refusal.message,
          });
          problems.push(refusal.message);
          refusedReason ??= refusal.reason;
          continue;
        }
      }
      const address = `${plan.coderAddress.host}:${plan.coderAddress.port}`;
      if (coderAddress === undefined) coderAddress = plan.coderAddress;
      else if (coderAddress.port !== plan.coderAddress.port) {
        problems.push(
          `Deployment ${dName} serves metrics on port ${plan.coderAddress.port}, others on ${coderAddress.port}`,
        );
      }
      const message = respectedMessage(spec, plan);
      statuses.push({
        name: dName,
        coderAddress: address,
        configured: true,
        ...(message !== undefined ? { message } : {}),
      });
      configured.push(deployment);
      exposures.push({ name: dName, exposure: plan.piiExposure });
    }

    // Deployments we configured earlier that this CR no longer selects: give them back.
    for (const deployment of all) {
      if (claimOf(deployment) === this.key && !selected.includes(deployment)) {
        const refusal = await this.tryApply(releaseCoderd(deployment), "CoderConfigured");
        if (refusal !== undefined) {
          problems.push(refusal.message);
          refusedReason ??= refusal.reason;
        } else this.released(deployment);
      }
    }

    // The Deployments' own pod selector, narrowed to the pods this CR configured (the
    // label planCoderd puts on the pod template).
    const podSelector = {
      ...commonPodSelector(configured.map((d) => d.spec?.selector?.matchLabels)),
      [instanceLabel]: this.cr.metadata.name,
    };
    let condition: ConditionInput;
    if (selected.length === 0) {
      condition = {
        type: "CoderConfigured",
        status: "False",
        reason: "NoDeploymentMatched",
        message: `no Deployment in namespace ${this.namespace} matches spec.selector`,
      };
    } else if (problems.length > 0) {
      condition = {
        type: "CoderConfigured",
        status: "False",
        reason: refusedReason ?? (configured.length > 0 ? "PartiallyConfigured" : "NotConfigured"),
        message: problems.join("; "),
      };
    } else {
      condition = {
        type: "CoderConfigured",
        status: "True",
        reason: "Configured",
        message: `Prometheus enabled on ${configured.map((d) => d.metadata?.name).join(", ")}`,
      };
    }
    const pii = piiCondition(spec, exposures);
    return {
      condition,
      deployments: statuses,
      coderAddress: configured.length ? coderAddress : undefined,
      podSelector,
      pii: pii ? { type: "PIIProtected", ...pii } : undefined,
    };
  }

  private claimantExists(claim: string): boolean {
    const [ns, n] = claim.split("/") as [string, string];
    return this.ctx.state.coderMetrics(ns, n) !== undefined;
  }

  private async configureExporter(spec: CoderMetricsSpec): Promise<ConditionInput> {
    const cmName = exporterConfigMapName(this.cr);
    const live = this.ctx.state.ownedConfigMap(this.namespace, cmName);
    if (!spec.exporter.enabled) {
      if (live !== undefined) {
        await this.ctx.kube.delete(this.ref("v1", "ConfigMap", cmName));
        this.writes++;
      }
      return {
        type: "ExporterReady",
        status: "False",
        reason: "Disabled",
        message: "spec.exporter.enabled is false",
      };
    }
    const plan = planExporterConfig(spec.exporter.config);
    if (!plan.ok) {
      // Keep the last good config; a pod that has none yet gets the identity config so it can start.
      if (live === undefined) {
        const refusal = await this.tryApply(
          stampDigest(desiredExporterConfigMap(this.cr, "{}\n")),
          "ExporterReady",
        );
        if (refusal !== undefined) return this.refused(refusal);
      }
      if (this.conditionChanged("ExporterReady", "InvalidConfig")) {
        this.ctx.events.warning(crTarget(this.cr), "InvalidExporterConfig", plan.message);
      }
      return {
        type: "ExporterReady",
        status: "False",
        reason: "InvalidConfig",
        message: `${plan.message} (the exporter keeps its last good config)`,
      };
    }
    const desired = stampDigest(desiredExporterConfigMap(this.cr, plan.text));
    if (!isUpToDate(desired, live)) {
      const refusal = await this.tryApply(desired, "ExporterReady");
      if (refusal !== undefined) return this.refused(refusal);
    }
    return {
      type: "ExporterReady",
      status: "True",
      reason: "ConfigApplied",
      message: `exporter config in ConfigMap ${cmName}; the exporter reloads it without a restart`,
    };
  }

  private async configureService(
    spec: CoderMetricsSpec,
    coderAddress: CoderAddress | undefined,
    podSelector: Record<string, string>,
  ): Promise<ConditionInput> {
    const type = "ServiceReady";
    if (coderAddress === undefined) {
      return {
        type,
        status: "False",
        reason: "WaitingForCoder",
        message: "no configured Coder Deployment to select yet",
      };
    }
    const name = spec.service.name;
    const live: V1Service | undefined = this.ctx.state.service(this.namespace, name);
    if (live !== undefined && !ownedBy(live, this.cr)) {
      // Never take over somebody else's Service.
      return {
        type,
        status: "False",
        reason: "ServiceNameTaken",
        message: `Service ${name} exists and is not managed by this CoderMetrics; delete it or set spec.service.name`,
      };
    }
    const desired = stampDigest(
      desiredService({ cr: this.cr, spec, podSelector, coderPort: coderAddress.port }),
    );
    if (!isUpToDate(desired, live)) {
      // Service ports merge by port number, not name: an edited port number would
      // sit beside ours under the same name, which the API server refuses. Put the
      // port list back first, then apply.
      const wanted = desired.spec?.ports ?? [];
      const clash = (live?.spec?.ports ?? []).some((p) =>
        wanted.some((w) => w.name === p.name && w.port !== p.port),
      );
      if (clash) {
        await this.ctx.kube.mergePatch(this.ref("v1", "Service", name), {
          spec: { ports: wanted },
        });
        this.writes++;
      }
      const refusal = await this.tryApply(desired, type);
      if (refusal !== undefined) return this.refused(refusal);
    }
    return {
      type,
      status: "True",
      reason: "Applied",
      message: `headless Service ${name} exposes ${(desired.spec?.ports ?? []).map((p) => `${p.name}:${p.port}`).join(" and ")}`,
    };
  }

  private async liveMonitor(
    monitorKind: MonitorKind,
    name: string,
  ): Promise<MonitorObject | undefined> {
    const cached = this.ctx.state.monitor(monitorKind, this.namespace, name);
    if (cached !== "unknown") return cached;
    return this.ctx.kube.get<MonitorObject & { apiVersion: string }>(
      this.ref(monitoringApiVersion, monitorKind, name),
    );
  }

  private async removeMonitor(monitorKind: MonitorKind, name: string): Promise<void> {
    if (!(await this.ctx.state.monitoringServes(monitorKind))) return;
    const live = await this.liveMonitor(monitorKind, name);
    if (live !== undefined && ownedBy(live, this.cr)) {
      await this.ctx.kube.delete(this.ref(monitoringApiVersion, monitorKind, name));
      this.writes++;
    }
  }

  private async configureMonitor(
    spec: CoderMetricsSpec,
    coderAddress: CoderAddress | undefined,
    podSelector: Record<string, string>,
    serviceReady: boolean,
  ): Promise<{
    condition: ConditionInput;
    applied: { kind: MonitorKind; name: string } | undefined;
  }> {
    const type = "ServiceMonitorReady";
    const name = spec.service.name;
    const mode = spec.monitor.mode;
    let wanted: MonitorKind | undefined;
    if (mode === "Auto") {
      wanted = (await this.ctx.state.monitoringServes("ServiceMonitor"))
        ? "ServiceMonitor"
        : undefined;
    } else if (mode !== "Disabled") {
      wanted = mode;
    }
    for (const other of monitorKinds) if (other !== wanted) await this.removeMonitor(other, name);

    if (mode === "Disabled") {
      return {
        condition: {
          type,
          status: "False",
          reason: "Disabled",
          message: "spec.monitor.mode is Disabled",
        },
        applied: undefined,
      };
    }
    if (wanted === undefined || !(await this.ctx.state.monitoringServes(wanted))) {
      const what = wanted ?? "ServiceMonitor";
      return {
        condition: {
          type,
          status: "False",
          reason: "MonitoringCRDNotInstalled",
          message: `${monitoringApiVersion} ${what} is not served (Prometheus Operator not installed); scrape the ${name} Service with a plain Prometheus job instead`,
        },
        applied: undefined,
      };
    }
    if (coderAddress === undefined || !serviceReady) {
      return {
        condition: {
          type,
          status: "False",
          reason: "WaitingForService",
          message: "waiting for the Service",
        },
        applied: undefined,
      };
    }
    const desired = stampDigest(
      desiredMonitor({
        cr: this.cr,
        spec,
        kind: wanted,
        podSelector,
        coderPort: coderAddress.port,
      }),
    );
    const live = await this.liveMonitor(wanted, name);
    if (live !== undefined && !ownedBy(live, this.cr)) {
      return {
        condition: {
          type,
          status: "False",
          reason: "MonitorNameTaken",
          message: `${wanted} ${name} exists and is not managed by this CoderMetrics`,
        },
        applied: undefined,
      };
    }
    if (!isUpToDate(desired, live)) {
      const refusal = await this.tryApply(desired, type);
      if (refusal !== undefined) return { condition: this.refused(refusal), applied: undefined };
    }
    return {
      condition: {
        type,
        status: "True",
        reason: "Applied",
        message: `${wanted} ${name} scrapes port ${spec.monitor.target === "Exporter" ? "exporter-http" : "prom-http"}`,
      },
      applied: { kind: wanted, name },
    };
  }

  private async discovered(
    applied: { kind: MonitorKind; name: string } | undefined,
  ): Promise<ConditionInput> {
    const type = "Discovered";
    if (applied === undefined) {
      return {
        type,
        status: "Unknown",
        reason: "NoMonitor",
        message: "no ServiceMonitor or PodMonitor to be discovered",
      };
    }
    const prometheuses = await this.ctx.state.prometheuses();
    if (!Array.isArray(prometheuses)) {
      return {
        type,
        status: "Unknown",
        reason: prometheuses.reason,
        message: prometheuses.unknown,
      };
    }
    const desiredLabels = desiredMonitorLabels(this.ctx.state, this.cr, applied);
    const needsLabels = needsNamespaceLabels(prometheuses, applied.kind);
    const selection = evaluateSelection(prometheuses, {
      kind: applied.kind,
      namespace: this.namespace,
      labels: desiredLabels,
      namespaceLabels: needsLabels ? await this.ctx.state.namespaceLabels(this.namespace) : {},
    });
    return {
      type,
      status: selection.discovered ? "True" : "False",
      reason: selection.reason,
      message: selection.message,
    };
  }

  /** A Deployment given back (its env and sidecar removed: coderd rolls): worth an Event. */
  private released(deployment: V1Deployment): void {
    this.ctx.events.normal(
      deploymentTarget(deployment),
      "CoderReleased",
      `CoderMetrics ${this.key} no longer configures this Deployment: its Prometheus env and exporter sidecar were removed`,
    );
  }

  /** Whether the CR's status did not already say this (a message, when given, is looked for in it). */
  private conditionChanged(type: string, reason: string, message?: string): boolean {
    const before = this.cr.status?.conditions?.find((c) => c.type === type);
    return (
      before?.reason !== reason || (message !== undefined && !before.message.includes(message))
    );
  }

  private async writeStatus(
    conditions: ConditionInput[],
    parts: {
      deployments: NonNullable<CoderMetricsStatus["deployments"]>;
      service: string | undefined;
      monitor: { kind: MonitorKind; name: string } | undefined;
      scrapeConfig: string;
    },
  ): Promise<void> {
    const now = (this.ctx.now ?? (() => new Date()))();
    const generation = this.cr.metadata.generation ?? 0;
    const status: CoderMetricsStatus = {
      observedGeneration: generation,
      conditions: mergeConditions(this.cr.status?.conditions, conditions, generation, now),
      deployments: parts.deployments,
      ...(parts.service ? { service: parts.service } : {}),
      ...(parts.monitor ? { monitor: parts.monitor } : {}),
      scrapeConfig: parts.scrapeConfig,
    };
    if (statusEqual(this.cr.status, status)) return;
    const ready = conditions.find((c) => c.type === "Ready");
    const wasReady = this.cr.status?.conditions?.find((c) => c.type === "Ready");
    if (ready && (ready.status !== wasReady?.status || ready.reason !== wasReady?.reason)) {
      if (ready.status === "True")
        this.ctx.events.normal(crTarget(this.cr), "Ready", ready.message);
      else this.ctx.events.warning(crTarget(this.cr), ready.reason, ready.message);
    }
    const updated = await this.ctx.kube.applyStatus(
      { group, version, plural, kind, namespace: this.namespace, name: this.cr.metadata.name },
      status,
    );
    this.ctx.state.wrote(updated as CoderMetrics);
    this.writes++;
  }

  /** The CR is being deleted: give every Deployment back, remove what we own, drop the finalizer. */
  async finalize(): Promise<void> {
    const { ctx, cr } = this;
    if (!(cr.metadata.finalizers ?? []).includes(finalizer)) return;
    for (const deployment of ctx.state.deployments(this.namespace)) {
      if (claimOf(deployment) === this.key) {
        await this.apply(releaseCoderd(deployment));
        this.released(deployment);
      }
    }
    const spec = resolveSpec(cr.spec);
    const service = ctx.state.service(this.namespace, spec.service.name);
    if (service !== undefined && ownedBy(service, cr)) {
      await ctx.kube.delete(this.ref("v1", "Service", spec.service.name));
    }
    if (ctx.state.ownedConfigMap(this.namespace, exporterConfigMapName(cr)) !== undefined) {
      await ctx.kube.delete(this.ref("v1", "ConfigMap", exporterConfigMapName(cr)));
    }
    for (const monitorKind of monitorKinds)
      await this.removeMonitor(monitorKind, spec.service.name);
    const updated = await ctx.kube.mergePatch(this.ref(apiVersion, kind, cr.metadata.name), {
      metadata: {
        resourceVersion: cr.metadata.resourceVersion,
        finalizers: (cr.metadata.finalizers ?? []).filter((f) => f !== finalizer),
      },
    });
    ctx.state.wrote(updated as unknown as CoderMetrics);
    this.writes++;
    ctx.log.info("released Coder and removed owned objects", { coderMetrics: this.key });
  }
}

/** Ours: controlled by this CoderMetrics (ownerReference), or carrying its instance label. */
function ownedBy(
  obj: {
    metadata?: {
      labels?: Record<string, string> | undefined;
      ownerReferences?: Array<{ uid: string; controller?: boolean | undefined }> | undefined;
    };
  },
  cr: CoderMetrics,
): boolean {
  const owner = obj.metadata?.ownerReferences?.find((r) => r.controller);
  if (owner !== undefined && cr.metadata.uid !== undefined) return owner.uid === cr.metadata.uid;
  return obj.metadata?.labels?.[instanceLabel] === cr.metadata.name;
}

/** The labels our monitor carries (what a Prometheus selector sees). */
function desiredMonitorLabels(
  _state: ClusterState,
  cr: CoderMetrics,
  _applied: { kind: MonitorKind; name: string },
): Record<string, string> {
  const spec = resolveSpec(cr.spec);
  return desiredMonitor({ cr, spec, kind: _applied.kind, podSelector: {}, coderPort: 0 }).metadata
    .labels;
}
