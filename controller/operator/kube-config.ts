// How every request reaches the API server: the credentials, one connection
// pool, and a deadline.
//
// Credentials come from either
//   - loadClusterAccess(): the kubeconfig read here, for what a controller
//     meets — the in-cluster ServiceAccount, or a kubeconfig with a token, a
//     token file, a client certificate or basic auth (client-go's loading
//     rules); a kubeconfig that needs an auth plugin (exec, auth-provider),
//     impersonation or a proxy is handed to client-node's KubeConfig instead;
//   - or a client-node KubeConfig (tests, the doctor, the cases above),
//     through its public applyToHTTPSOptions, which applies all of its auth.
// The controller's own path never loads client-node: its generated clients
// are ~1,000 modules, ~50 MB of the process's memory for requests that are
// plain JSON over HTTP.
//
// Token files are read again once a minute (as client-go's cached file token
// source: the kubelet rotates bound ServiceAccount tokens). Client
// certificates are read once per process (restart the controller after
// rotating them).
//
// The pool is one undici Agent, which speaks HTTP/2 to the API server: one
// connection that every request and watch shares. A request that got no
// answer by its deadline, or a watch that went silent, may mean that
// connection is dead (a NAT entry or load balancer dropped it without a
// word): the pool is then replaced, as client-go's HTTP/2 health check closes
// a connection that stops answering; requests still on it fail and are
// retried on the new one.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import type * as k8s from "@kubernetes/client-node";
import { Agent } from "undici";
import { parse } from "yaml";
import { version } from "../common/version.ts";

export interface RequestBounds {
  /** Deadline of one request (connect, send, and read the whole answer). */
  timeoutMs: number;
  /** Aborts every request in flight and refuses new ones (shutdown). */
  signal?: AbortSignal | undefined;
  /**
   * No request may run past this instant (performance.now()): the lease a
   * leader's work is fenced by. A request is refused once it has passed and
   * aborted when it comes.
   */
  deadline?: (() => number) | undefined;
}

export class RequestRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RequestRefused";
  }
}

export const userAgent = `coder-metrics/${version}`;

/** TLS material of the connection (read once) and the headers of one request. */
export interface Credentials {
  tls: {
    ca?: Buffer | undefined;
    cert?: Buffer | undefined;
    key?: Buffer | undefined;
    rejectUnauthorized?: boolean | undefined;
    servername?: string | undefined;
  };
  headers: Record<string, string>;
}

/** Where the API server is and how to authenticate to it. */
export interface ClusterAccess {
  readonly server: string;
  credentials(): Promise<Credentials>;
}

/** The part of client-node's KubeConfig used here (a type: nothing of it is loaded at run time). */
export type KubeConfigLike = Pick<k8s.KubeConfig, "getCurrentCluster" | "applyToHTTPSOptions">;

function isClusterAccess(config: KubeConfigLike | ClusterAccess): config is ClusterAccess {
  return "credentials" in config;
}

/** A client-node KubeConfig as ClusterAccess: its own auth (exec, OIDC, token files, …) applies. */
function fromKubeConfig(config: KubeConfigLike): ClusterAccess {
  const cluster = config.getCurrentCluster();
  if (cluster === null) throw new Error("no current cluster in the kubeconfig");
  const buffer = (v: unknown) =>
    v === undefined || v === null ? undefined : Buffer.isBuffer(v) ? v : Buffer.from(String(v));
  return {
    server: cluster.server,
    credentials: async () => {
      const opts: {
        ca?: unknown;
        cert?: unknown;
        key?: unknown;
        rejectUnauthorized?: boolean;
        servername?: string;
        auth?: string;
        headers?: Record<string, unknown>;
      } = {};
      await config.applyToHTTPSOptions(opts as never);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k] = String(v);
      if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
      return {
        tls: {
          ca: buffer(opts.ca),
          cert: buffer(opts.cert),
          key: buffer(opts.key),
          rejectUnauthorized: opts.rejectUnauthorized,
          servername: opts.servername,
        },
        headers,
      };
    },
  };
}

// --- the kubeconfig, read here --------------------------------------------------------------

interface Named<T> {
  name: string;
  value: T;
}

interface KubeconfigFile {
  clusters: Named<Record<string, unknown>>[];
  users: Named<Record<string, unknown>>[];
  contexts: Named<{ cluster?: string; user?: string }>[];
  currentContext: string | undefined;
}

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
/** How long a token read from a file is used before the file is read again. */
const tokenFileTtlMs = 60_000;

function named<T>(list: unknown, key: string, dir: string): Named<T>[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry) => {
    const e = entry as { name?: unknown } & Record<string, unknown>;
    if (typeof e?.name !== "string" || typeof e[key] !== "object" || e[key] === null) return [];
    const value = { ...(e[key] as Record<string, unknown>) };
    // Paths in a kubeconfig are relative to the file that names them.
    for (const field of ["certificate-authority", "client-certificate", "client-key", "tokenFile"])
      if (typeof value[field] === "string" && !isAbsolute(value[field] as string))
        value[field] = join(dir, value[field] as string);
    return [{ name: e.name, value: value as T }];
  });
}

function readKubeconfig(path: string): KubeconfigFile {
  const doc = (parse(readFileSync(path, "utf8")) ?? {}) as Record<string, unknown>;
  const dir = dirname(path);
  return {
    clusters: named(doc.clusters, "cluster", dir),
    users: named(doc.users, "user", dir),
    contexts: named(doc.contexts, "context", dir),
    currentContext:
      typeof doc["current-context"] === "string" && doc["current-context"]
        ? doc["current-context"]
        : undefined,
  };
}

/** client-go's merge of $KUBECONFIG's files: the first to set a name or the current context wins. */
function merged(files: KubeconfigFile[]): KubeconfigFile {
  const first = <T>(lists: Named<T>[][]) => {
    const out = new Map<string, T>();
    for (const list of lists) for (const e of list) if (!out.has(e.name)) out.set(e.name, e.value);
    return [...out].map(([name, value]) => ({ name, value }));
  };
  return {
    clusters: first(files.map((f) => f.clusters)),
    users: first(files.map((f) => f.users)),
    contexts: first(files.map((f) => f.contexts)),
    currentContext: files.find((f) => f.currentContext !== undefined)?.currentContext,
  };
}

function decoded(data: unknown): Buffer | undefined {
  return typeof data === "string" && data !== "" ? Buffer.from(data, "base64") : undefined;
}

function fileOrData(file: unknown, data: unknown): Buffer | undefined {
  return typeof file === "string" && file !== "" ? readFileSync(file) : decoded(data);
}

/** A token read from a file, read again once it is older than a minute. */
function tokenFromFile(path: string): () => string {
  let cached: { token: string; at: number } | undefined;
  return () => {
    if (cached === undefined || performance.now() - cached.at > tokenFileTtlMs)
      cached = { token: readFileSync(path, "utf8").trim(), at: performance.now() };
    return cached.token;
  };
}

/** Access from a kubeconfig's current context; undefined when client-node's auth is needed. */
function accessFrom(file: KubeconfigFile, origin: string): ClusterAccess | undefined {
  const contextName = file.currentContext;
  if (contextName === undefined) throw new Error(`${origin}: no current-context`);
  const context = file.contexts.find((c) => c.name === contextName)?.value;
  if (context === undefined) throw new Error(`${origin}: context "${contextName}" not found`);
  const cluster = file.clusters.find((c) => c.name === context.cluster)?.value;
  if (cluster === undefined)
    throw new Error(
      `${origin}: cluster "${context.cluster}" of context "${contextName}" not found`,
    );
  const user = file.users.find((u) => u.name === context.user)?.value ?? {};
  const plugin = ["exec", "auth-provider", "as", "as-groups", "as-uid", "as-user-extra"];
  if (cluster["proxy-url"] || plugin.some((k) => user[k] !== undefined)) return undefined;
  const server = String(cluster.server ?? "");
  if (server === "") throw new Error(`${origin}: cluster "${context.cluster}" has no server`);
  const insecure = cluster["insecure-skip-tls-verify"] === true;
  const tls: Credentials["tls"] = {
    ca: fileOrData(cluster["certificate-authority"], cluster["certificate-authority-data"]),
    cert: fileOrData(user["client-certificate"], user["client-certificate-data"]),
    key: fileOrData(user["client-key"], user["client-key-data"]),
    ...(insecure ? { rejectUnauthorized: false } : {}),
    ...(typeof cluster["tls-server-name"] === "string"
      ? { servername: cluster["tls-server-name"] }
      : {}),
  };
  const token =
    typeof user.token === "string" && user.token !== ""
      ? () => user.token as string
      : typeof user.tokenFile === "string" && user.tokenFile !== ""
        ? tokenFromFile(user.tokenFile)
        : undefined;
  const basic =
    typeof user.username === "string" && user.username !== ""
      ? `Basic ${Buffer.from(`${user.username}:${String(user.password ?? "")}`).toString("base64")}`
      : undefined;
  return {
    server,
    credentials: async () => {
      const authorization = token ? `Bearer ${token()}` : basic;
      const headers: Record<string, string> = authorization ? { Authorization: authorization } : {};
      return { tls, headers };
    },
  };
}

function inCluster(): ClusterAccess {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? "";
  const port = process.env.KUBERNETES_SERVICE_PORT ?? "";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const token = tokenFromFile(join(serviceAccountDir, "token"));
  const ca = readFileSync(join(serviceAccountDir, "ca.crt"));
  return {
    server: `https://${hostPart}:${port}`,
    credentials: async () => ({ tls: { ca }, headers: { Authorization: `Bearer ${token()}` } }),
  };
}

/**
 * The cluster to talk to, as client-node's KubeConfig.loadFromDefault finds it:
 * the file given, else $KUBECONFIG's files, else ~/.kube/config, else the
 * in-cluster ServiceAccount. Auth plugins, impersonation and proxies go
 * through client-node (loaded only then).
 */
export async function loadClusterAccess(kubeconfigPath?: string): Promise<ClusterAccess> {
  let files: string[] = [];
  if (kubeconfigPath) files = [kubeconfigPath];
  else if (process.env.KUBECONFIG)
    files = process.env.KUBECONFIG.split(delimiter).filter((f) => f !== "");
  else if (existsSync(join(homedir(), ".kube", "config")))
    files = [join(homedir(), ".kube", "config")];
  else if (existsSync(join(serviceAccountDir, "token"))) return inCluster();
  else throw new Error("no kubeconfig: set --kubeconfig or KUBECONFIG, or run in a cluster");
  const access = accessFrom(merged(files.map(readKubeconfig)), files.join(delimiter));
  if (access !== undefined) return access;
  const k8s = await import("@kubernetes/client-node");
  const config = new k8s.KubeConfig();
  if (kubeconfigPath) config.loadFromFile(kubeconfigPath);
  else config.loadFromDefault();
  return fromKubeConfig(config);
}

// --- the transport ---------------------------------------------------------------------------

type Dispatcher = Agent;

export class KubeTransport {
  readonly access: ClusterAccess;
  readonly bounds: RequestBounds;
  /** The kept pool; undefined until the first request (or after replaceConnections). */
  private pool: Dispatcher | undefined;

  constructor(config: KubeConfigLike | ClusterAccess, bounds: RequestBounds) {
    this.access = isClusterAccess(config) ? config : fromKubeConfig(config);
    this.bounds = bounds;
  }

  get server(): string {
    return this.access.server;
  }

  /**
   * Headers and the connection pool of one request (no deadline: callers
   * bring their signal). The pool is built from the first request's TLS
   * material and kept.
   */
  async authenticate(): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> {
    const { tls, headers } = await this.access.credentials();
    this.pool ??= new Agent({
      // client-go's keep-alive period; undici's default (60 s) races cloud load balancers.
      connect: { ...tls, keepAlive: true, keepAliveInitialDelay: 30_000 },
    });
    return {
      headers: { ...headers, "User-Agent": userAgent, Accept: "application/json" },
      dispatcher: this.pool,
    };
  }

  /** The pool requests go out on now (to name it in replaceConnections). */
  get connections(): Dispatcher | undefined {
    return this.pool;
  }

  /**
   * A request on `pool` got no answer in time: drop that pool (if it is still
   * the current one) so the next request connects afresh.
   */
  replaceConnections(pool: Dispatcher | undefined): void {
    if (this.pool === undefined || (pool !== undefined && pool !== this.pool)) return;
    const dead = this.pool;
    this.pool = undefined;
    dead.destroy().catch(() => undefined);
  }

  /**
   * The signal one request runs under: its own timeout, the transport's
   * shutdown signal and the fence. Throws when the fence has already passed.
   */
  requestSignal(timeoutMs = this.bounds.timeoutMs): AbortSignal {
    if (this.bounds.signal?.aborted) throw new RequestRefused("the controller is stopping");
    let budget = timeoutMs;
    if (this.bounds.deadline !== undefined) {
      const left = Math.floor(this.bounds.deadline() - performance.now());
      if (left <= 0) throw new RequestRefused("not leading: the lease may have run out");
      budget = Math.min(budget, left);
    }
    const signals = [AbortSignal.timeout(budget)];
    if (this.bounds.signal !== undefined) signals.push(this.bounds.signal);
    return AbortSignal.any(signals);
  }
}
