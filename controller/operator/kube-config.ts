// How every request reaches the API server: the kubeconfig's credentials, one
// connection pool, and a deadline. Built only on client-node's public API —
// KubeConfig.applySecurityAuthentication, RequestContext's dispatcher/signal
// setters and createConfiguration — so no private method is replaced.
//
// client-node authenticates each request by building a new undici Agent
// (its TLS options) and putting it on the request: every call would pay a TLS
// handshake and leave idle sockets behind. We keep the first Agent it builds
// for this transport and put that one on every later request; credentials in
// headers (tokens, exec plugins) are still applied per request. Client
// certificates are therefore read once per process (restart the controller
// after rotating them).
//
// undici speaks HTTP/2 to the API server, so that pool is one connection that
// every request and watch shares. A request that got no answer by its
// deadline, or a watch that went silent, may mean that connection is dead
// (a NAT entry or load balancer dropped it without a word): the pool is then
// replaced, as client-go's HTTP/2 health check closes a connection that stops
// answering; requests still on it fail and are retried on the new one.
import type * as k8s from "@kubernetes/client-node";
import {
  createConfiguration,
  type RequestContext,
  ServerConfiguration,
} from "@kubernetes/client-node";
import { version } from "../common/version.ts";

type Dispatcher = ReturnType<RequestContext["getDispatcher"]>;

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

export class KubeTransport implements k8s.SecurityAuthentication {
  readonly config: k8s.KubeConfig;
  readonly bounds: RequestBounds;
  /** The kept pool; undefined until the first request (or after replaceConnections). */
  private pool: { value: Dispatcher } | undefined;

  constructor(config: k8s.KubeConfig, bounds: RequestBounds) {
    this.config = config;
    this.bounds = bounds;
  }

  get server(): string {
    const cluster = this.config.getCurrentCluster();
    if (cluster === null) throw new Error("no current cluster in the kubeconfig");
    return cluster.server;
  }

  getName(): string {
    return "coder-metrics kubeconfig transport";
  }

  /** Called by the generated clients right before they send: credentials, pool, deadline. */
  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    const signal = this.requestSignal();
    await this.authenticate(context);
    context.setSignal(signal);
  }

  /** Credentials and the shared connection pool, without a deadline (watches bring their own). */
  async authenticate(context: RequestContext): Promise<void> {
    await this.config.applySecurityAuthentication(context);
    if (this.pool === undefined) this.pool = { value: context.getDispatcher() };
    else if (this.pool.value !== undefined) context.setDispatcher(this.pool.value);
    context.setHeaderParam("User-Agent", userAgent);
  }

  /** The pool requests go out on now (to name it in replaceConnections). */
  get connections(): Dispatcher | undefined {
    return this.pool?.value;
  }

  /**
   * A request on `pool` got no answer in time: drop that pool (if it is still
   * the current one) so the next request connects afresh.
   */
  replaceConnections(pool: Dispatcher | undefined): void {
    if (this.pool === undefined || (pool !== undefined && pool !== this.pool.value)) return;
    const dead = this.pool.value;
    this.pool = undefined;
    dead?.destroy().catch(() => undefined);
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

  /** A configuration for client-node's generated API classes that sends through this transport. */
  apiConfiguration(): k8s.Configuration {
    return createConfiguration({
      baseServer: new ServerConfiguration(this.server, {}),
      authMethods: { default: this },
    });
  }
}
