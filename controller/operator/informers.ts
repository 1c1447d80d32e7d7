// Informers: list+watch caches the reconciler reads from, so a reconcile with
// nothing to do makes no requests at all. client-node's ListWatch relists on
// 410 Gone by itself; on any other error it stops, so we restart it with
// backoff (API server restarts, network blips) and log once per failure.
import * as k8s from "@kubernetes/client-node";
import type { Kube } from "./kube.ts";
import type { Logger } from "../common/log.ts";

export interface ResourceType {
  apiVersion: string;
  kind: string;
  /** Plural resource name, for the watch path. */
  plural: string;
}

export type InformerEvent = "add" | "update" | "delete";

export class ResilientInformer<T extends k8s.KubernetesObject> {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  private readonly informer: k8s.Informer<T> & k8s.ObjectCache<T>;
  private stopped = false;
  private failures = 0;
  private lastFailureAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(
    kube: Kube,
    type: ResourceType,
    options: { namespace?: string | undefined; labelSelector?: string | undefined; log: Logger },
    onEvent: (event: InformerEvent, obj: T) => void,
  ) {
    this.type = type;
    this.namespace = options.namespace;
    this.log = options.log;
    const prefix = type.apiVersion.includes("/")
      ? `/apis/${type.apiVersion}`
      : `/api/${type.apiVersion}`;
    const path = options.namespace
      ? `${prefix}/namespaces/${options.namespace}/${type.plural}`
      : `${prefix}/${type.plural}`;
    const listFn = () =>
      kube.call("list", type.kind, path, () =>
        k8s.KubernetesObjectApi.makeApiClient(kube.config).list<T>(
          type.apiVersion,
          type.kind,
          options.namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          options.labelSelector,
        ),
      );
    this.informer = k8s.makeInformer<T>(kube.config, path, listFn, options.labelSelector);
    const deliver = (event: InformerEvent) => (o: T) => {
      this.log.debug("informer event", {
        event,
        kind: type.kind,
        object: `${o.metadata?.namespace}/${o.metadata?.name}`,
        resourceVersion: o.metadata?.resourceVersion,
      });
      onEvent(event, o);
    };
    this.informer.on("add", deliver("add"));
    this.informer.on("update", deliver("update"));
    this.informer.on("delete", deliver("delete"));
    this.informer.on("error", (err: unknown) => this.restartLater(err));
  }

  /** Lists, then watches; resolves once the cache holds the first list. */
  async start(): Promise<void> {
    await this.informer.start();
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    // Back off while failures keep coming; a minute of quiet starts over.
    if (Date.now() - this.lastFailureAt > 60_000) this.failures = 0;
    this.lastFailureAt = Date.now();
    this.failures++;
    const delay = Math.min(500 * 2 ** (this.failures - 1), 30_000);
    this.log.warn("watch failed, restarting", {
      resource: `${this.type.kind}${this.namespace ? ` in ${this.namespace}` : ""}`,
      error: err instanceof Error ? err.message : String(err),
      retryInMs: delay,
    });
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.informer.start().catch((e: unknown) => this.restartLater(e));
    }, delay);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }
}
