// Every request the controller makes to the Kubernetes API goes through here:
// one field manager for server-side apply, one place that counts requests by
// verb (so "a no-op reconcile makes zero writes" is observable), and errors
// turned into values that say what failed on which object.
import * as k8s from "@kubernetes/client-node";
import { fieldManager } from "../desired/names.ts";
import { kubeFetch } from "./kube-fetch.ts";
import type { ControllerMetrics } from "./metrics.ts";

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

export class KubeError extends Error {
  readonly status: number;
  readonly verb: string;
  readonly object: string;
  constructor(verb: string, object: string, status: number, detail: string) {
    super(`${verb} ${object}: ${status ? `HTTP ${status}: ` : ""}${detail}`);
    this.name = "KubeError";
    this.status = status;
    this.verb = verb;
    this.object = object;
  }
}

function describe(ref: ObjectRef): string {
  const ns = ref.metadata.namespace ? `${ref.metadata.namespace}/` : "";
  return `${ref.kind} ${ns}${ref.metadata.name}`;
}

function statusOf(err: unknown): number {
  const e = err as { code?: unknown; statusCode?: unknown };
  return typeof e.code === "number" ? e.code : typeof e.statusCode === "number" ? e.statusCode : 0;
}

function detailOf(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === "string") {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {}
    return body.slice(0, 500);
  }
  if (body !== null && typeof body === "object" && "message" in body) return String(body.message);
  return err instanceof Error ? err.message : String(err);
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError ? err.status === 404 : statusOf(err) === 404;
}

export class Kube {
  readonly config: k8s.KubeConfig;
  private readonly objects: k8s.KubernetesObjectApi;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;
  private readonly metrics: ControllerMetrics;

  constructor(config: k8s.KubeConfig, metrics: ControllerMetrics) {
    this.config = config;
    this.objects = k8s.KubernetesObjectApi.makeApiClient(config);
    this.custom = config.makeApiClient(k8s.CustomObjectsApi);
    this.core = config.makeApiClient(k8s.CoreV1Api);
    this.metrics = metrics;
  }

  /** Runs one API call, counting it and wrapping its failure. */
  async call<T>(verb: string, resource: string, object: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.metrics.apiRequests.inc({ verb, resource, code: "200" });
      return result;
    } catch (err) {
      const status = statusOf(err);
      this.metrics.apiRequests.inc({ verb, resource, code: String(status || "error") });
      throw new KubeError(verb, object, status, detailOf(err));
    }
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
      const response = await kubeFetch(this.config, "GET", path);
      if (response.status === 404) return [];
      if (response.status !== 200)
        throw Object.assign(new Error(`discovery answered ${response.status}`), {
          code: response.status,
        });
      return (response.body as k8s.V1APIResourceList).resources;
    });
    return resources.some((r) => r.name === plural);
  }

  async namespaceLabels(name: string): Promise<Record<string, string>> {
    const ns = await this.call("get", "Namespace", `Namespace ${name}`, () =>
      this.core.readNamespace({ name }),
    );
    return ns.metadata?.labels ?? {};
  }
}
