// A request to the API server with the kubeconfig's credentials, the body
// read whole and parsed as JSON when it is JSON. Every request the controller
// makes goes through here (Kube wraps it with counting and errors); the doctor
// and the tests call it with a client-node KubeConfig.
import { fetch } from "undici";
import { type ClusterAccess, type KubeConfigLike, KubeTransport } from "./kube-config.ts";

export interface KubeResponse {
  status: number;
  body: unknown;
}

/** Per-request deadline for callers that hand over a bare KubeConfig (the doctor, tests). */
const defaultTimeoutMs = 60_000;
const transports = new WeakMap<object, KubeTransport>();

function transportOf(target: KubeConfigLike | ClusterAccess | KubeTransport): KubeTransport {
  if (target instanceof KubeTransport) return target;
  let transport = transports.get(target);
  if (transport === undefined) {
    transport = new KubeTransport(target, { timeoutMs: defaultTimeoutMs });
    transports.set(target, transport);
  }
  return transport;
}

export async function kubeFetch(
  target: KubeConfigLike | ClusterAccess | KubeTransport,
  method: "GET" | "PATCH" | "POST" | "PUT" | "DELETE",
  path: string,
  options: { body?: unknown; contentType?: string; timeoutMs?: number } = {},
): Promise<KubeResponse> {
  const transport = transportOf(target);
  const signal = transport.requestSignal(options.timeoutMs);
  const url = `${transport.server}${path}`;
  const { headers, dispatcher } = await transport.authenticate();
  if (options.body !== undefined)
    headers["Content-Type"] = options.contentType ?? "application/json";
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
