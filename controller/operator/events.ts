// Kubernetes Events (events.k8s.io/v1) on the objects we touch, so
// `kubectl describe codermetrics` and `kubectl get events` tell the story.
import { randomBytes } from "node:crypto";
import type { Kube } from "./kube.ts";
import type { Logger } from "../common/log.ts";
import { microTime } from "./micro-time.ts";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string | undefined;
}

export interface EventRecorder {
  normal(target: EventTarget, reason: string, note: string): void;
  warning(target: EventTarget, reason: string, note: string): void;
}

/** The recorder as its owner sees it: Events still being created can be waited for. */
export interface FlushableEventRecorder extends EventRecorder {
  /** Resolves once every Event recorded so far is created (or has failed). */
  flush(): Promise<void>;
}

/** Go's metav1.MicroTime format. */

export function createEventRecorder(
  kube: Kube,
  log: Logger,
  instance: string,
): FlushableEventRecorder {
  const pending = new Set<Promise<unknown>>();
  const emit = (type: "Normal" | "Warning", target: EventTarget, reason: string, note: string) => {
    const event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: {
        name: `${target.name}.${randomBytes(8).toString("hex")}`,
        namespace: target.namespace,
      },
      eventTime: microTime(new Date()),
      reportingController: "coder-metrics.io/controller",
      reportingInstance: instance,
      action: reason,
      reason,
      note: note.slice(0, 1024),
      type,
      regarding: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.name,
        namespace: target.namespace,
        ...(target.uid ? { uid: target.uid } : {}),
      },
    };
    // Events are best effort: a failure is logged, never fails a reconcile.
    const created = kube
      .call("create", "Event", `Event for ${target.kind} ${target.namespace}/${target.name}`, () =>
        kube.createObject(event),
      )
      .catch((err: unknown) => log.warn("could not record event", { reason, error: String(err) }))
      .finally(() => pending.delete(created));
    pending.add(created);
  };
  return {
    normal: (t, r, n) => emit("Normal", t, r, n),
    warning: (t, r, n) => emit("Warning", t, r, n),
    flush: async () => {
      await Promise.all(pending);
    },
  };
}
