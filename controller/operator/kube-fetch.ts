// A raw request to the API server with the kubeconfig's credentials, for the
// few calls the generated client cannot make faithfully: discovery, lists
// read as plain JSON, and applying objects whose schema uses keys its
// serializer drops (CRDs with x-kubernetes-int-or-string, for one).
import type * as k8s from "@kubernetes/client-node";
import { HttpMethod, RequestContext } from "@kubernetes/client-node";
import { fetch } from "undici";
import { KubeTransport } from "./kube-config.ts";

export interface KubeResponse {
  status: number;
  body: unknown;
}

/** Per-request deadline for callers that hand over a bare KubeConfig (the doctor, tests). */
const defaultTimeoutMs = 60_000;
const transports = new WeakMap<k8s.KubeConfig, KubeTransport>();

function transportOf(target: k8s.KubeConfig | KubeTransport): KubeTransport {
  if (target instanceof KubeTransport) return target;
  let transport = transports.get(target);
  if (transport === undefined) {
    transport = new KubeTransport(target, { timeoutMs: defaultTimeoutMs });
    transports.set(target, transport);
  }
  return transport;
}

export async function kubeFetch(
  target: k8s.KubeConfig | KubeTransport,
  method: "GET" | "PATCH" | "POST" | "PUT" | "DELETE",
  path: string,
  options: { body?: unknown; contentType?: string; timeoutMs?: number } = {},
): Promise<KubeResponse> {
  const transport = transportOf(target);
  const signal = transport.requestSignal(options.timeoutMs);
  const url = `${transport.server}${path}`;
  const context = new RequestContext(url, HttpMethod[method]);
  await transport.authenticate(context);
  const headers: Record<string, string> = { ...context.getHeaders(), accept: "application/json" };
  if (options.body !== undefined)
    headers["content-type"] = options.contentType ?? "application/json";
  const dispatcher = context.getDispatcher();
  let text: string;
  let status: number;
  try {
    const response = await fetch(url, {
      method,
      headers,
      dispatcher,
      signal,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    status = response.status;
    text = await response.text();
  } catch (err) {
    if ((err as { name?: unknown }).name === "TimeoutError")
      transport.replaceConnections(dispatcher);
    throw err;
  }
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status, body };
}
