// Leader election on a coordination.k8s.io/v1 Lease, keeping client-go's
// leaderelection contract:
//   - the holder renews every retryPeriod; others take over only after they
//     have watched the record go unchanged for a full leaseDuration (measured
//     on their own clock, so clock skew between nodes does not matter);
//     writes carry the Lease's resourceVersion, so two candidates never both win;
//   - every acquire or renew attempt is bounded by the renew deadline (its
//     requests are cut when it passes), so a leader cut off from the API server
//     knows within renewDeadline that it can no longer tell whether it leads;
//   - onStartedLeading runs beside the renew loop, never blocking it;
//   - renewal failing past the deadline ends leadership (onStoppedLeading: the
//     process exits, as controller-runtime's manager does);
//   - release() (graceful shutdown, after the work has stopped) hands the
//     lease back so a standby takes over at once (ReleaseOnCancel);
//   - healthy() is the HealthzAdaptor: false when we think we lead but have
//     not renewed for leaseDuration + a tolerance (a wedged renew loop).
// On top, workDeadline() fences the leader's own work: the instant until
// which the lease is surely still ours (start of the last successful renew +
// renewDeadline < the earliest moment a standby may take over). The
// controller's requests are refused after it and aborted when it comes.
import type { V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../common/log.ts";
import { isNotFound, Kube } from "./kube.ts";
import { type ClusterAccess, type KubeConfigLike, KubeTransport } from "./kube-config.ts";
import type { ControllerMetrics } from "./metrics.ts";
import { microTime } from "./micro-time.ts";

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** How long past an unrenewed lease healthy() still says yes (kube-controller-manager: 20 s). */
  healthzToleranceMs?: number;
  /** Called once when the lease is won; runs beside the renew loop. */
  onStartedLeading: () => void;
  /** Called once when leadership is lost (not after release()). */
  onStoppedLeading: () => void;
  log: Logger;
}

/** client-go's NewLeaderElector checks; the jitter factor of acquire retries is 1.2. */
export function checkLeaderTiming(t: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): string | undefined {
  if (t.leaseDurationMs <= t.renewDeadlineMs)
    return "the lease duration must be longer than the renew deadline";
  if (t.renewDeadlineMs <= 1.2 * t.retryPeriodMs)
    return "the renew deadline must be longer than 1.2 × the retry period";
  return undefined;
}

type LeaseObject = V1Lease & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
};

export class LeaderElector {
  private readonly kube: Kube;
  private readonly metrics: ControllerMetrics;
  private readonly o: Required<LeaderElectionOptions>;
  private readonly describe: string;
  /** The record as last seen, and when (performance.now()) it last changed. */
  private observed: { holder: string; resourceVersion: string } | undefined;
  private observedAt = 0;
  /** The Lease as we last read or wrote it (the leader's fast path renews it without a read). */
  private lease: LeaseObject | undefined;
  private leading = false;
  private stopped = false;
  /** Start of the last successful acquire/renew, and when it completed. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  private renewedDoneAt = Number.NEGATIVE_INFINITY;
  /** Requests of the attempt in flight may run until here. */
  private attemptDeadline = Number.NEGATIVE_INFINITY;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    kubeconfig: KubeConfigLike | ClusterAccess,
    metrics: ControllerMetrics,
    options: LeaderElectionOptions,
  ) {
    this.o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      healthzToleranceMs: 20_000,
      ...options,
    };
    const invalid = checkLeaderTiming(this.o);
    if (invalid !== undefined) throw new Error(`leader election: ${invalid}`);
    this.metrics = metrics;
    // Its own connection pool: renewals never queue behind the controller's requests.
    this.kube = new Kube(
      new KubeTransport(kubeconfig, {
        timeoutMs: this.o.renewDeadlineMs,
        deadline: () => this.attemptDeadline,
      }),
      metrics,
    );
    this.describe = `Lease ${this.o.namespace}/${this.o.name}`;
    metrics.leader.set(0);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Until when (performance.now()) work done as the leader is safe; -Infinity when not leading. */
  workDeadline(): number {
    return this.leading ? this.renewedAt + this.o.renewDeadlineMs : Number.NEGATIVE_INFINITY;
  }

  /** client-go's LeaderElector.Check: unhealthy when leading on a lease not renewed for too long. */
  healthy(now = performance.now()): boolean {
    return (
      !this.leading ||
      now - this.renewedDoneAt <= this.o.leaseDurationMs + this.o.healthzToleranceMs
    );
  }

  private ref(): LeaseObject {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: this.o.name, namespace: this.o.namespace },
    };
  }

  private write(lease: LeaseObject): Promise<LeaseObject> {
    return this.kube.call("update", "Lease", this.describe, () =>
      this.kube.replaceObject(lease),
    ) as Promise<LeaseObject>;
  }

  /** The record we write: renewing ours, taking it over (a transition), or creating it. */
  private renewed(lease: LeaseObject, now: Date, how: "renew" | "take" | "create"): LeaseObject {
    const takingOver = how !== "renew";
    const spec = lease.spec ?? {};
    return {
      ...this.ref(),
      metadata: { ...this.ref().metadata, resourceVersion: lease.metadata.resourceVersion },
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
        acquireTime: takingOver ? (microTime(now) as unknown as Date) : spec.acquireTime,
        renewTime: microTime(now) as unknown as Date,
        // As client-go: every acquisition by a new holder counts, a released lease's too.
        leaseTransitions: (spec.leaseTransitions ?? 0) + (how === "take" ? 1 : 0),
      },
    };
  }

  /** One attempt to acquire or renew; true while we hold the lease. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    // 1. The leader renews the record it wrote last, without reading it first.
    if (this.leading && this.lease !== undefined) {
      try {
        this.lease = await this.write(this.renewed(this.lease, now, "renew"));
        return true;
      } catch (err) {
        this.o.log.debug("leader election: fast renew failed, reading the lease", {
          error: String(err),
        });
      }
    }
    // 2. Read it (or create it).
    let lease: LeaseObject | undefined;
    try {
      lease = await this.kube.get<LeaseObject>(this.ref());
    } catch (err) {
      this.o.log.warn("leader election: cannot read the lease", { error: String(err) });
      return false;
    }
    if (lease === undefined) {
      try {
        this.lease = (await this.kube.call("create", "Lease", this.describe, () =>
          this.kube.createObject(this.renewed({ ...this.ref(), spec: {} }, now, "create")),
        )) as LeaseObject;
        return true;
      } catch (err) {
        this.o.log.warn("leader election: cannot create the lease", { error: String(err) });
        return false;
      }
    }
    // 3. Held by someone else and renewed within the lease duration (by our clock)? Wait.
    const holder = lease.spec?.holderIdentity ?? "";
    const resourceVersion = lease.metadata.resourceVersion ?? "";
    if (
      this.observed === undefined ||
      this.observed.holder !== holder ||
      this.observed.resourceVersion !== resourceVersion
    ) {
      this.observed = { holder, resourceVersion };
      this.observedAt = performance.now();
    }
    this.lease = lease;
    const leaseMs = (lease.spec?.leaseDurationSeconds ?? this.o.leaseDurationMs / 1000) * 1000;
    const expired = performance.now() - this.observedAt > leaseMs;
    if (holder !== "" && holder !== this.o.identity && !expired) return false;
    // 4. Ours, free or expired: write it.
    try {
      this.lease = await this.write(
        this.renewed(lease, now, holder === this.o.identity ? "renew" : "take"),
      );
      return true;
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status !== 409 && !isNotFound(err)) {
        this.o.log.warn("leader election: cannot update the lease", { error: String(err) });
      }
      return false; // 409: someone else wrote first
    }
  }

  /** Runs until stopped or leadership is lost: acquires, then renews. */
  start(): void {
    this.loop ??= this.run();
  }

  private pastDeadline(): boolean {
    return this.leading && performance.now() >= this.renewedAt + this.o.renewDeadlineMs;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      this.attemptDeadline = this.leading
        ? this.renewedAt + this.o.renewDeadlineMs
        : started + this.o.renewDeadlineMs;
      const ok = await this.tryAcquireOrRenew().catch(() => false);
      if (this.stopped) return;
      if (ok) {
        this.renewedAt = started;
        this.renewedDoneAt = performance.now();
        if (!this.leading) this.startLeading();
      }
      if (this.pastDeadline()) return this.lose();
      // Acquire retries are jittered (client-go's JitterFactor 1.2); renewals are not.
      await this.sleep(
        this.leading ? this.o.retryPeriodMs : this.o.retryPeriodMs * (1 + 1.2 * Math.random()),
      );
      if (this.stopped) return; // release() woke us
      // After a long sleep (the process was frozen) the lease may be gone already.
      if (this.pastDeadline()) return this.lose();
    }
  }

  private startLeading(): void {
    this.leading = true;
    this.metrics.leader.set(1);
    this.o.log.info("became leader", { lease: this.describe, identity: this.o.identity });
    // Beside the renew loop, never in its way.
    setImmediate(() => this.o.onStartedLeading());
  }

  private lose(): void {
    this.leading = false;
    this.stopped = true;
    this.metrics.leader.set(0);
    this.o.log.error("lost leadership: could not renew the lease within the renew deadline", {
      lease: this.describe,
      renewDeadlineMs: this.o.renewDeadlineMs,
    });
    this.o.onStoppedLeading();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Stops renewing and, if leading, hands the lease back so a standby takes over
   * at once. Call it only after the work it guards has stopped.
   */
  async release(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (!this.leading) return;
    this.leading = false;
    this.metrics.leader.set(0);
    this.attemptDeadline = performance.now() + this.o.renewDeadlineMs;
    try {
      let lease = this.lease ?? (await this.kube.get<LeaseObject>(this.ref()));
      for (let attempt = 0; attempt < 2 && lease !== undefined; attempt++) {
        if (lease.spec?.holderIdentity !== this.o.identity) return;
        try {
          await this.write({
            ...this.ref(),
            metadata: { ...this.ref().metadata, resourceVersion: lease.metadata.resourceVersion },
            spec: {
              ...lease.spec,
              holderIdentity: "",
              leaseDurationSeconds: 1,
              renewTime: microTime(new Date()) as unknown as Date,
            },
          });
          this.o.log.info("released the lease", { lease: this.describe });
          return;
        } catch (err) {
          if ((err as { status?: number }).status !== 409) throw err;
          lease = await this.kube.get<LeaseObject>(this.ref());
        }
      }
    } catch (err) {
      this.o.log.warn("leader election: could not release the lease", { error: String(err) });
    }
  }
}
