// A raw request to the API server with the kubeconfig's credentials, for the
// few calls the generated client cannot make faithfully: discovery, and
// applying objects whose schema uses keys its serializer drops (CRDs with
// x-kubernetes-int-or-string, for one).
import type * as k8s from "@kubernetes/client-node";
import { HttpMethod, RequestContext } from "@kubernetes/client-node";
import { fetch } from "undici";

export interface KubeResponse {
  status: number;
  body: unknown;
}

export async function kubeFetch(
  config: k8s.KubeConfig,
  method: "GET" | "PATCH" | "POST" | "DELETE",
  path: string,
  options: { body?: unknown; contentType?: string } = {},
): Promise<KubeResponse> {
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new Error("no current cluster in the kubeconfig");
  const url = `${cluster.server}${path}`;
  const context = new RequestContext(url, HttpMethod[method]);
  await config.applySecurityAuthentication(context);
  const headers: Record<string, string> = { ...context.getHeaders(), accept: "application/json" };
  if (options.body !== undefined)
    headers["content-type"] = options.contentType ?? "application/json";
  const response = await fetch(url, {
    method,
    headers,
    dispatcher: context.getDispatcher(),
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: response.status, body };
}
