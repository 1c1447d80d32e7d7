// Every request the controller makes to the Kubernetes API goes through here:
// one field manager for server-side apply, one place that counts requests by
// verb (so "a no-op reconcile makes zero writes" is observable), one
// transport that bounds each request by a deadline, and errors turned into
// values that say what failed on which object and why (the API's reason).
import * as k8s from "@kubernetes/client-node";
import { fieldManager } from "../desired/names.ts";
import { type KubeTransport, RequestRefused } from "./kube-config.ts";
import { kubeFetch } from "./kube-fetch.ts";
import type { ControllerMetrics } from "./metrics.ts";

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

export class KubeError extends Error {
  /** HTTP status; 0 when there was no answer (timeout, connection, refused locally). */
  readonly status: number;
  /** The API's machine-readable StatusReason (Forbidden, Invalid, Conflict, ...); "" without one. */
  readonly reason: string;
  readonly verb: string;
  readonly object: string;
  /** The API server's own message (or what went wrong on our side). */
  readonly detail: string;
  constructor(verb: string, object: string, status: number, detail: string, reason = "") {
    super(`${verb} ${object}: ${status ? `HTTP ${status}: ` : ""}${detail}`);
    this.name = "KubeError";
    this.status = status;
    this.reason = reason;
    this.verb = verb;
    this.object = object;
    this.detail = detail;
  }
}

function describe(ref: ObjectRef): string {
  const ns = ref.metadata.namespace ? `${ref.metadata.namespace}/` : "";
  return `${ref.kind} ${ns}${ref.metadata.name}`;
}

/** The HTTP status of a failed call (client-node's ApiException.code); 0 without an answer. */
function statusOf(err: unknown): number {
  const e = err as { code?: unknown; statusCode?: unknown };
  const code = typeof e.code === "number" ? e.code : e.statusCode;
  // DOMExceptions (timeouts, aborts) carry a legacy numeric code too: not an HTTP status.
  return typeof code === "number" && code >= 100 && code < 600 ? code : 0;
}

/** The metav1.Status an API error carries, when it carries one. */
function apiStatusOf(err: unknown): { message?: unknown; reason?: unknown } | undefined {
  let body = (err as { body?: unknown }).body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  return body !== null && typeof body === "object" ? body : undefined;
}

function detailOf(err: unknown, timeoutMs: number): string {
  const name = (err as { name?: unknown }).name;
  if (name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  if (name === "AbortError") return "aborted: the controller is stopping";
  if (err instanceof RequestRefused) return err.message;
  const status = apiStatusOf(err);
  if (status?.message !== undefined) return String(status.message);
  const body = (err as { body?: unknown }).body;
  if (typeof body === "string") return body.slice(0, 500);
  const cause = (err as { cause?: unknown }).cause;
  const message = err instanceof Error ? err.message : String(err);
  return cause instanceof Error ? `${message}: ${cause.message}` : message;
}

function reasonOf(err: unknown): string {
  const reason = apiStatusOf(err)?.reason;
  return typeof reason === "string" ? reason : "";
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError ? err.status === 404 : statusOf(err) === 404;
}

export class Kube {
  readonly transport: KubeTransport;
  private readonly objects: k8s.KubernetesObjectApi;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly metrics: ControllerMetrics;

  constructor(transport: KubeTransport, metrics: ControllerMetrics) {
    this.transport = transport;
    const configuration = transport.apiConfiguration();
    this.objects = new k8s.KubernetesObjectApi(configuration);
    this.custom = new k8s.CustomObjectsApi(configuration);
    this.core = new k8s.CoreV1Api(configuration);
    this.metrics = metrics;
  }

  /** Counts one request (watches count themselves here too). */
  count(verb: string, resource: string, status: number): void {
    this.metrics.apiRequests.inc({ verb, resource, code: String(status || "error") });
  }

  /** Runs one API call, counting it and wrapping its failure. */
  async call<T>(verb: string, resource: string, object: string, fn: () => Promise<T>): Promise<T> {
    const pool = this.transport.connections;
    try {
      const result = await fn();
      this.count(verb, resource, 200);
      return result;
    } catch (err) {
      if (err instanceof KubeError) {
        this.count(verb, resource, err.status);
        throw err;
      }
      if ((err as { name?: unknown }).name === "TimeoutError")
        this.transport.replaceConnections(pool);
      const status = statusOf(err);
      this.count(verb, resource, status);
      throw new KubeError(
        verb,
        object,
        status,
        detailOf(err, this.transport.bounds.timeoutMs),
        reasonOf(err),
      );
    }
  }

  /** A raw request through this transport (discovery, plain-JSON lists); counted, not thrown on status. */
  fetch(
    method: "GET" | "PATCH" | "POST" | "PUT" | "DELETE",
    path: string,
  ): Promise<{ status: number; body: unknown }> {
    return kubeFetch(this.transport, method, path);
  }

  /** Server-side apply of exactly the fields in `desired`, as coder-metrics. */
  apply<T extends k8s.KubernetesObject>(desired: T & ObjectRef): Promise<T> {
    return this.call("apply", desired.kind, describe(desired), () =>
      this.objects.patch(
        desired,
        undefined,
        undefined,
        fieldManager,
        true,
        k8s.PatchStrategy.ServerSideApply,
      ),
    );
  }

  /** Creates an object (uncounted: callers wrap it in call()). */
  createObject<T extends k8s.KubernetesObject>(object: T): Promise<T> {
    return this.objects.create(object);
  }

  /** Replaces an object (PUT); with metadata.resourceVersion set, 409 if it changed meanwhile. */
  replaceObject<T extends k8s.KubernetesObject>(object: T): Promise<T> {
    return this.objects.replace(object, undefined, undefined, fieldManager);
  }

  /** JSON merge patch guarded by resourceVersion: fails with 409 if the object changed meanwhile. */
  mergePatch<T extends k8s.KubernetesObject>(
    ref: ObjectRef,
    patch: Record<string, unknown>,
  ): Promise<T> {
    return this.call("patch", ref.kind, describe(ref), () =>
      this.objects.patch<T>(
        {
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          ...patch,
          metadata: { ...ref.metadata, ...(patch.metadata as object) },
        } as T,
        undefined,
        undefined,
        fieldManager,
        undefined,
        k8s.PatchStrategy.MergePatch,
      ),
    );
  }

  /** Reads an object; undefined when it does not exist. */
  async get<T extends k8s.KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.call("get", ref.kind, describe(ref), () => this.objects.read<T>(ref));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T extends k8s.KubernetesObject>(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
  ): Promise<T[]> {
    const list = await this.call("list", kind, `${kind} in ${namespace ?? "all namespaces"}`, () =>
      this.objects.list<T>(
        apiVersion,
        kind,
        namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      ),
    );
    return list.items;
  }

  /** Deletes an object; absent is fine. */
  async delete(ref: ObjectRef): Promise<void> {
    try {
      await this.call("delete", ref.kind, describe(ref), () =>
        this.objects.delete(ref, undefined, undefined, undefined, undefined, "Background"),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Server-side apply to a custom resource's status subresource. */
  applyStatus(
    ref: {
      group: string;
      version: string;
      plural: string;
      namespace: string;
      name: string;
      kind: string;
    },
    status: unknown,
  ): Promise<unknown> {
    const body = {
      apiVersion: `${ref.group}/${ref.version}`,
      kind: ref.kind,
      metadata: { name: ref.name, namespace: ref.namespace },
      status,
    };
    return this.call("apply-status", ref.kind, `${ref.kind} ${ref.namespace}/${ref.name}`, () =>
      this.custom.patchNamespacedCustomObjectStatus(
        { ...ref, body, fieldManager, force: true },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.ServerSideApply),
      ),
    );
  }

  /**
   * Is a group/version serving a resource (monitoring.coreos.com/v1 servicemonitors)?
   * Uses discovery, which every authenticated user may read, so it needs no RBAC.
   */
  async serves(groupVersion: string, plural: string): Promise<boolean> {
    const path = `/apis/${groupVersion}`;
    const resources = await this.call("discover", groupVersion, path, async () => {
      const response = await this.fetch("GET", path);
      if (response.status === 404) return [];
      if (response.status !== 200)
        throw Object.assign(new Error(`discovery answered ${response.status}`), {
          code: response.status,
          body: response.body,
        });
      return (response.body as k8s.V1APIResourceList).resources;
    });
    return resources.some((r) => r.name === plural);
  }

  /**
   * Lists a collection as plain JSON, page by page (as client-go's pager),
   * each page bounded by the request deadline. Returns the items and the
   * list's resourceVersion, from which a watch continues.
   */
  async listRaw<T>(
    kind: string,
    path: string,
    labelSelector: string | undefined,
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let continueToken = "";
    let resourceVersion = "";
    do {
      const query = new URLSearchParams({ limit: "500" });
      if (labelSelector) query.set("labelSelector", labelSelector);
      if (continueToken) query.set("continue", continueToken);
      const page = await this.call("list", kind, `${kind} at ${path}`, async () => {
        const response = await this.fetch("GET", `${path}?${query}`);
        if (response.status !== 200)
          throw Object.assign(new Error(`list answered ${response.status}`), {
            code: response.status,
            body: response.body,
          });
        return response.body as {
          items?: T[];
          metadata?: { resourceVersion?: string; continue?: string };
        };
      });
      items.push(...(page.items ?? []));
      continueToken = page.metadata?.continue ?? "";
      resourceVersion = page.metadata?.resourceVersion ?? "";
    } while (continueToken);
    return { items, resourceVersion };
  }

  async namespaceLabels(name: string): Promise<Record<string, string>> {
    const ns = await this.call("get", "Namespace", `Namespace ${name}`, () =>
      this.core.readNamespace({ name }),
    );
    return ns.metadata?.labels ?? {};
  }
}
