// Every request the controller makes to the Kubernetes API goes through here:
// one field manager for server-side apply, one place that counts requests by
// verb (so "a no-op reconcile makes zero writes" is observable), one
// transport that bounds each request by a deadline, and errors turned into
// values that say what failed on which object and why (the API's reason).
// Requests are plain JSON over the transport (no generated client: objects
// are sent as they are and come back as the API server wrote them).
import type * as k8s from "@kubernetes/client-node";
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

/** The resource of each kind the controller reads or writes. */
const plurals: Record<string, string> = {
  CoderMetrics: "codermetrics",
  ConfigMap: "configmaps",
  Deployment: "deployments",
  Event: "events",
  Lease: "leases",
  Namespace: "namespaces",
  PodMonitor: "podmonitors",
  Prometheus: "prometheuses",
  PrometheusAgent: "prometheusagents",
  Service: "services",
  ServiceMonitor: "servicemonitors",
};

/** The object's path (or, without a name, its collection's). */
function pathOf(
  ref: { apiVersion: string; kind: string; metadata?: { name?: string; namespace?: string } },
  named = true,
): string {
  const plural = plurals[ref.kind];
  if (plural === undefined) throw new Error(`no resource known for kind ${ref.kind}`);
  const prefix = ref.apiVersion.includes("/")
    ? `/apis/${ref.apiVersion}`
    : `/api/${ref.apiVersion}`;
  const namespace = ref.metadata?.namespace
    ? `/namespaces/${encodeURIComponent(ref.metadata.namespace)}`
    : "";
  const name = named ? `/${encodeURIComponent(ref.metadata?.name ?? "")}` : "";
  return `${prefix}${namespace}/${plural}${name}`;
}

const applyQuery = `fieldManager=${encodeURIComponent(fieldManager)}&force=true`;
const applyPatch = "application/apply-patch+yaml";

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
  private readonly metrics: ControllerMetrics;

  constructor(transport: KubeTransport, metrics: ControllerMetrics) {
    this.transport = transport;
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

  /** One request; the answer's body, or a thrown { code, body } that call() turns into a KubeError. */
  private async send<T>(
    method: "GET" | "PATCH" | "POST" | "PUT" | "DELETE",
    path: string,
    body?: unknown,
    contentType?: string,
  ): Promise<T> {
    const response = await kubeFetch(this.transport, method, path, {
      ...(body !== undefined ? { body } : {}),
      ...(contentType !== undefined ? { contentType } : {}),
    });
    if (response.status >= 300)
      throw Object.assign(new Error(`${method} ${path} answered ${response.status}`), {
        code: response.status,
        body: response.body,
      });
    return response.body as T;
  }

  /** Server-side apply of exactly the fields in `desired`, as coder-metrics. */
  apply<T extends k8s.KubernetesObject>(desired: T & ObjectRef): Promise<T> {
    return this.call("apply", desired.kind, describe(desired), () =>
      this.send<T>("PATCH", `${pathOf(desired)}?${applyQuery}`, desired, applyPatch),
    );
  }

  /** Creates an object (uncounted: callers wrap it in call()). */
  createObject<T extends k8s.KubernetesObject>(object: T & ObjectRef): Promise<T> {
    return this.send<T>("POST", pathOf(object, false), object);
  }

  /** Replaces an object (PUT); with metadata.resourceVersion set, 409 if it changed meanwhile. */
  replaceObject<T extends k8s.KubernetesObject>(object: T & ObjectRef): Promise<T> {
    return this.send<T>(
      "PUT",
      `${pathOf(object)}?fieldManager=${encodeURIComponent(fieldManager)}`,
      object,
    );
  }

  /** JSON merge patch guarded by resourceVersion: fails with 409 if the object changed meanwhile. */
  mergePatch<T extends k8s.KubernetesObject>(
    ref: ObjectRef,
    patch: Record<string, unknown>,
  ): Promise<T> {
    const body = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      ...patch,
      metadata: { ...ref.metadata, ...(patch.metadata as object) },
    };
    return this.call("patch", ref.kind, describe(ref), () =>
      this.send<T>(
        "PATCH",
        `${pathOf(ref)}?fieldManager=${encodeURIComponent(fieldManager)}`,
        body,
        "application/merge-patch+json",
      ),
    );
  }

  /** Reads an object; undefined when it does not exist. */
  async get<T extends k8s.KubernetesObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.call("get", ref.kind, describe(ref), () =>
        this.send<T>("GET", pathOf(ref)),
      );
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
    const path = pathOf({ apiVersion, kind, metadata: { namespace } }, false);
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : "";
    const list = await this.call("list", kind, `${kind} in ${namespace ?? "all namespaces"}`, () =>
      this.send<{ items?: T[] }>("GET", `${path}${query}`),
    );
    return list.items ?? [];
  }

  /** Deletes an object; absent is fine. */
  async delete(ref: ObjectRef): Promise<void> {
    try {
      await this.call("delete", ref.kind, describe(ref), () =>
        this.send("DELETE", pathOf(ref), {
          apiVersion: "v1",
          kind: "DeleteOptions",
          propagationPolicy: "Background",
        }),
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
    const path = `/apis/${ref.group}/${ref.version}/namespaces/${encodeURIComponent(ref.namespace)}/${ref.plural}/${encodeURIComponent(ref.name)}/status`;
    return this.call("apply-status", ref.kind, `${ref.kind} ${ref.namespace}/${ref.name}`, () =>
      this.send("PATCH", `${path}?${applyQuery}`, body, applyPatch),
    );
  }

  /**
   * Is a group/version serving a resource (monitoring.coreos.com/v1 servicemonitors)?
   * Uses discovery, which every authenticated user may read, so it needs no RBAC.
   */
  async serves(groupVersion: string, plural: string): Promise<boolean> {
    return (await this.resourcesOf(groupVersion)).includes(plural);
  }

  /** The resources a group/version serves (discovery); none when the group/version is not served. */
  async resourcesOf(groupVersion: string): Promise<string[]> {
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
    return resources.map((r) => r.name);
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
      this.send<k8s.V1Namespace>("GET", `/api/v1/namespaces/${encodeURIComponent(name)}`),
    );
    return ns.metadata?.labels ?? {};
  }
}
