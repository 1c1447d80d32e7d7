// Informers: list+watch caches the reconciler reads from, so a reconcile with
// nothing to do makes no requests at all. The contract is client-go's
// reflector and cache.WaitForCacheSync:
//   - hasSynced turns true only once a list has succeeded and its items are in
//     the cache (a failed list leaves it false: "synced" over an empty cache
//     would let the controller act on nothing);
//   - a watch continues from the last resourceVersion seen (events and
//     bookmarks); 410 Gone means the history is compacted: list again;
//   - the server is asked to end each watch after timeoutSeconds, random in
//     [watchTimeout, 2·watchTimeout), and sends bookmarks meanwhile; a watch
//     that hears nothing (no event, no bookmark, no end) for longer than that
//     is a dead connection and is dropped and started again;
//   - any other failure is retried with backoff (API server restarts, network
//     blips, RBAC not granted yet) and logged;
//   - a transform (client-go's SetTransform) trims each object before it is
//     stored, e.g. the managedFields nobody reads, so the cache holds less.
// A list's items carry no apiVersion/kind (the API server leaves TypeMeta off
// the items of built-in types); they are filled in from the resource type, so
// a cached object looks the same whether a list or a watch delivered it.
// Lists go through Kube, so each page has the request deadline.
import type * as k8s from "@kubernetes/client-node";
import { fetch } from "undici";
import type { Logger } from "../common/log.ts";
import { type Kube, KubeError } from "./kube.ts";

export interface ResourceType {
  apiVersion: string;
  kind: string;
  /** Plural resource name, for the watch path. */
  plural: string;
}

export type InformerEvent = "add" | "update" | "delete";

export interface InformerOptions<T = unknown> {
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  log: Logger;
  /** See above; client-go's minWatchTimeout is 5 minutes. */
  watchTimeoutMs?: number | undefined;
  /** Applied to every object before it is cached (it may change the object it is given). */
  transform?: ((obj: T) => T) | undefined;
}

interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T & { code?: number; reason?: string; message?: string };
}

const defaultWatchTimeoutMs = 300_000;
/** A watch that ends this soon without an event counts as a failure (no tight loop). */
const shortWatchMs = 1000;

function gone(err: unknown): boolean {
  return err instanceof KubeError && (err.status === 410 || err.reason === "Expired");
}

export class ResilientInformer<T extends k8s.KubernetesObject> {
  readonly type: ResourceType;
  readonly namespace: string | undefined;
  private readonly kube: Kube;
  private readonly path: string;
  private readonly labelSelector: string | undefined;
  private readonly watchTimeoutMs: number;
  private readonly log: Logger;
  private readonly onEvent: (event: InformerEvent, obj: T) => void;
  private readonly transform: ((obj: T) => T) | undefined;
  private objects = new Map<string, Map<string, T>>();
  private resourceVersion = "";
  private synced = false;
  private readonly syncListeners = new Set<(err?: Error) => void>();
  private lastError: string | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;

  constructor(
    kube: Kube,
    type: ResourceType,
    options: InformerOptions<T>,
    onEvent: (event: InformerEvent, obj: T) => void,
  ) {
    this.kube = kube;
    this.type = type;
    this.namespace = options.namespace;
    this.labelSelector = options.labelSelector;
    this.watchTimeoutMs = options.watchTimeoutMs ?? defaultWatchTimeoutMs;
    this.log = options.log;
    this.onEvent = onEvent;
    this.transform = options.transform;
    const prefix = type.apiVersion.includes("/")
      ? `/apis/${type.apiVersion}`
      : `/api/${type.apiVersion}`;
    this.path = options.namespace
      ? `${prefix}/namespaces/${options.namespace}/${type.plural}`
      : `${prefix}/${type.plural}`;
  }

  /** True once a list has succeeded and filled the cache; stays true (later relists refresh it). */
  get hasSynced(): boolean {
    return this.synced;
  }

  private describe(): string {
    return `${this.type.kind}${this.namespace ? ` in ${this.namespace}` : ""}`;
  }

  /** Starts listing and watching in the background (idempotent). */
  start(): void {
    this.running ??= this.run();
  }

  /**
   * Resolves once synced. Rejects when `timeoutMs` passes first, when `signal`
   * aborts, or — with failFast — at the first failed list.
   */
  waitForSync(options: {
    timeoutMs: number;
    signal?: AbortSignal;
    failFast?: boolean;
  }): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", aborted);
        this.syncListeners.delete(listener);
        if (err) reject(err);
        else resolve();
      };
      const listener = (err?: Error) => {
        if (err === undefined) done();
        else if (options.failFast) done(err);
      };
      const aborted = () => done(new Error(`stopped while waiting for ${this.describe()} to sync`));
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `${this.describe()} did not sync within ${options.timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ""}`,
            ),
          ),
        options.timeoutMs,
      );
      timer.unref();
      options.signal?.addEventListener("abort", aborted, { once: true });
      this.syncListeners.add(listener);
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    let lastFailureAt = 0;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === "") await this.relist();
        const began = performance.now();
        const events = await this.watch();
        if (events === 0 && performance.now() - began < shortWatchMs)
          throw new Error("the watch ended at once");
        this.lastError = undefined;
      } catch (err) {
        if (this.stopped) return;
        if (gone(err)) {
          // Compacted history: start over from a fresh list, at once.
          this.log.info("watch history compacted, listing again", { resource: this.describe() });
          this.resourceVersion = "";
          continue;
        }
        this.lastError = err instanceof Error ? err.message : String(err);
        if (!this.synced) for (const l of [...this.syncListeners]) l(new Error(this.lastError));
        // Back off while failures keep coming; a minute of quiet starts over.
        if (performance.now() - lastFailureAt > 60_000) failures = 0;
        lastFailureAt = performance.now();
        failures++;
        const delay = Math.min(500 * 2 ** (failures - 1), 30_000);
        this.log.warn("list/watch failed, retrying", {
          resource: this.describe(),
          error: this.lastError,
          retryInMs: delay,
        });
        await this.sleep(delay);
      }
    }
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

  private keyOf(obj: T): [namespace: string, name: string] {
    return [obj.metadata?.namespace ?? "", obj.metadata?.name ?? ""];
  }

  private upsert(received: T): void {
    const obj = this.transform ? this.transform(received) : received;
    const [namespace, name] = this.keyOf(obj);
    let byName = this.objects.get(namespace);
    if (byName === undefined) {
      byName = new Map();
      this.objects.set(namespace, byName);
    }
    const before = byName.get(name);
    byName.set(name, obj);
    if (before === undefined) this.deliver("add", obj);
    else if (before.metadata?.resourceVersion !== obj.metadata?.resourceVersion)
      this.deliver("update", obj);
  }

  private remove(obj: T): void {
    const [namespace, name] = this.keyOf(obj);
    const byName = this.objects.get(namespace);
    if (byName?.delete(name)) {
      if (byName.size === 0) this.objects.delete(namespace);
      this.deliver("delete", obj);
    }
  }

  private deliver(event: InformerEvent, obj: T): void {
    this.log.debug("informer event", {
      event,
      kind: this.type.kind,
      object: `${obj.metadata?.namespace}/${obj.metadata?.name}`,
      resourceVersion: obj.metadata?.resourceVersion,
    });
    this.onEvent(event, obj);
  }

  /** Lists, replaces the cache with the answer (deletes for what is gone), marks it synced. */
  private async relist(): Promise<void> {
    const list = await this.kube.listRaw<T>(this.type.kind, this.path, this.labelSelector);
    for (const item of list.items) {
      item.apiVersion ??= this.type.apiVersion;
      item.kind ??= this.type.kind;
    }
    const fresh = new Set(list.items.map((o) => this.keyOf(o).join("/")));
    for (const byName of [...this.objects.values()])
      for (const obj of [...byName.values()])
        if (!fresh.has(this.keyOf(obj).join("/"))) this.remove(obj);
    for (const obj of list.items) this.upsert(obj);
    this.resourceVersion = list.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      this.log.debug("informer synced", { resource: this.describe(), objects: list.items.length });
      for (const l of [...this.syncListeners]) l();
    }
  }

  /** One watch, until the server ends it; returns how many events it delivered. */
  private async watch(): Promise<number> {
    const timeoutSeconds = Math.max(
      1,
      Math.ceil((this.watchTimeoutMs / 1000) * (1 + Math.random())),
    );
    const query = new URLSearchParams({
      watch: "true",
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(timeoutSeconds),
    });
    if (this.labelSelector) query.set("labelSelector", this.labelSelector);
    const url = `${this.kube.transport.server}${this.path}?${query}`;
    const { headers, dispatcher } = await this.kube.transport.authenticate();
    // Silence longer than the server's own end of the watch means the connection is dead.
    const quietLimitMs = timeoutSeconds * 1000 + 2000;
    const silence = new AbortController();
    const signals = [silence.signal, this.abort.signal];
    if (this.kube.transport.bounds.signal) signals.push(this.kube.transport.bounds.signal);
    let timer: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(timer);
      timer = setTimeout(() => silence.abort(), quietLimitMs);
      timer.unref();
    };
    heard();
    let events = 0;
    try {
      const response = await fetch(url, {
        headers,
        dispatcher,
        signal: AbortSignal.any(signals),
      });
      this.kube.count("watch", this.type.kind, response.status);
      if (response.status !== 200) {
        const text = await response.text();
        let status: { message?: string; reason?: string } = {};
        try {
          status = JSON.parse(text);
        } catch {}
        throw new KubeError(
          "watch",
          this.describe(),
          response.status,
          status.message ?? text.slice(0, 500),
          status.reason ?? "",
        );
      }
      if (response.body === null) return 0;
      const decoder = new TextDecoder();
      let pending = "";
      for await (const chunk of response.body) {
        heard();
        pending += decoder.decode(chunk, { stream: true });
        for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line === "") continue;
          this.handle(JSON.parse(line) as WatchEvent<T>);
          events++;
        }
      }
      return events;
    } catch (err) {
      if (silence.signal.aborted && !this.stopped) {
        // The connection may be dead, and with HTTP/2 it is everyone's: replace it.
        this.kube.transport.replaceConnections(dispatcher);
        throw new Error(
          `watch silent for ${quietLimitMs} ms (no event, no bookmark): reconnecting`,
        );
      }
      throw err;
    } finally {
      clearTimeout(timer);
      silence.abort(); // releases the connection whichever way the loop ended
    }
  }

  private handle(event: WatchEvent<T>): void {
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
        this.upsert(event.object);
        break;
      case "DELETED":
        this.remove(event.object);
        break;
      case "BOOKMARK":
        break;
      case "ERROR": {
        const status = event.object;
        throw new KubeError(
          "watch",
          this.describe(),
          status.code ?? 0,
          status.message ?? "watch error",
          status.reason ?? "",
        );
      }
    }
    const rv = event.object.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
  }

  list(namespace?: string): readonly T[] {
    if (namespace === undefined) return [...this.objects.values()].flatMap((m) => [...m.values()]);
    return [...(this.objects.get(namespace)?.values() ?? [])];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(namespace ?? "")?.get(name);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.running;
  }
}
