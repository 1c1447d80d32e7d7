// Leader election on a coordination.k8s.io/v1 Lease, after client-go's
// leaderelection: the holder renews every retryPeriod; others take over only
// after they have watched the record go unchanged for a full leaseDuration
// (measured on their own clock, so clock skew between nodes does not matter).
// Writes use the Lease's resourceVersion, so two candidates can never both win.
import type { V1Lease } from "@kubernetes/client-node";
import { isNotFound, type Kube } from "./kube.ts";
import type { Logger } from "../common/log.ts";
import { microTime } from "./micro-time.ts";

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void | Promise<void>;
  /** Called once when leadership is lost (not after release()). */
  onStoppedLeading: () => void;
  log: Logger;
}

export class LeaderElector {
  private readonly kube: Kube;
  private readonly o: Required<
    Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "log">
  > &
    Pick<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "log">;
  private observed: { holder: string; renewTime: string; resourceVersion: string } | undefined;
  private observedAt = 0;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;

  constructor(kube: Kube, options: LeaderElectionOptions) {
    this.kube = kube;
    this.o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...options,
    };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private ref() {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: this.o.name, namespace: this.o.namespace },
    };
  }

  /** One attempt to acquire or renew; true while we hold the lease. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const leaseSeconds = Math.ceil(this.o.leaseDurationMs / 1000);
    let lease: V1Lease | undefined;
    try {
      lease = await this.kube.get<V1Lease>(this.ref());
    } catch (err) {
      this.o.log.warn("leader election: cannot read lease", { error: String(err) });
      return false;
    }
    if (lease === undefined) {
      await this.kube.call("create", "Lease", `Lease ${this.o.namespace}/${this.o.name}`, () =>
        this.kube.createObject({
          ...this.ref(),
          spec: {
            holderIdentity: this.o.identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        }),
      );
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const renewTime = String(spec.renewTime ?? "");
    const resourceVersion = lease.metadata?.resourceVersion ?? "";
    if (
      this.observed === undefined ||
      this.observed.holder !== holder ||
      this.observed.renewTime !== renewTime
    ) {
      this.observed = { holder, renewTime, resourceVersion };
      this.observedAt = Date.now();
    }
    const held = holder !== "" && holder !== this.o.identity;
    const expired =
      Date.now() - this.observedAt > (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (held && !expired) return false;

    const takingOver = holder !== this.o.identity;
    const updated = {
      ...this.ref(),
      metadata: { ...this.ref().metadata, resourceVersion },
      spec: {
        holderIdentity: this.o.identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: takingOver ? microTime(now) : spec.acquireTime,
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== "" ? 1 : 0),
      },
    };
    try {
      await this.kube.call("update", "Lease", `Lease ${this.o.namespace}/${this.o.name}`, () =>
        this.kube.replaceObject(updated),
      );
      return true;
    } catch (err) {
      if ((err as { status?: number }).status === 409) return false; // someone else wrote first
      if (isNotFound(err)) return false;
      this.o.log.warn("leader election: cannot update lease", { error: String(err) });
      return false;
    }
  }

  /** Runs until stopped: acquires, then renews; calls the callbacks on transitions. */
  start(): void {
    const tick = async () => {
      if (this.stopped) return;
      const ok = await this.tryAcquireOrRenew().catch(() => false);
      if (this.stopped) return;
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.o.log.info("became leader", {
            lease: `${this.o.namespace}/${this.o.name}`,
            identity: this.o.identity,
          });
          await this.o.onStartedLeading();
        }
      } else if (this.leading && Date.now() - this.lastRenew > this.o.renewDeadlineMs) {
        this.leading = false;
        this.o.log.error("lost leadership: could not renew the lease in time", {
          renewDeadlineMs: this.o.renewDeadlineMs,
        });
        this.stopped = true;
        this.o.onStoppedLeading();
        return;
      }
      this.timer = setTimeout(tick, this.o.retryPeriodMs);
    };
    void tick();
  }

  /** Stops renewing and, if leading, hands the lease back so a standby takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.kube.get<V1Lease>(this.ref());
      if (lease?.spec?.holderIdentity !== this.o.identity) return;
      await this.kube.call("update", "Lease", `Lease ${this.o.namespace}/${this.o.name}`, () =>
        this.kube.replaceObject({
          ...this.ref(),
          metadata: { ...this.ref().metadata, resourceVersion: lease.metadata?.resourceVersion },
          spec: {
            ...lease.spec,
            holderIdentity: "",
            leaseDurationSeconds: 1,
            renewTime: microTime(new Date()),
          },
        }),
      );
    } catch (err) {
      this.o.log.warn("leader election: could not release the lease", { error: String(err) });
    }
  }
}
