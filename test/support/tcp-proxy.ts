// A TCP proxy between a client and the API server that can cut the network
// without closing anything: blackHole() stops every byte in both directions
// on every connection, present and future (TLS passes through untouched, so
// the client still talks to the real API server). The model of a partition:
//   - bytes sent while cut are held, as TCP keeps retransmitting them, and
//     delivered on heal() if both ends still hold the connection open;
//   - a connection the client gave up on meanwhile (aborted, process exited)
//     is dropped with whatever it had sent: the server never sees it;
//   - blackHoleExisting() cuts only the connections open now (a peer that
//     vanished without a FIN, a NAT entry dropped), new connections pass.
// The upstream side may bind a local address of its own (e.g. 127.0.0.2), so
// the API server's audit log tells this client's requests from others.
import { connect, createServer, type Socket } from "node:net";
import * as k8s from "@kubernetes/client-node";

export interface TcpProxy {
  /** https://127.0.0.1:<port>: the address to give the client. */
  url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Client bytes delivered to the server since the last heal(). */
  readonly forwardedSinceHeal: number;
  blackHole(): void;
  blackHoleExisting(): void;
  heal(): void;
  close(): Promise<void>;
}

interface Connection {
  client: Socket;
  upstream: Socket;
  held: boolean;
  toServer: Buffer[];
  toClient: Buffer[];
  clientGone: boolean;
  serverGone: boolean;
}

export async function startTcpProxy(
  target: { host: string; port: number },
  options: { localAddress?: string } = {},
): Promise<TcpProxy> {
  const connections = new Set<Connection>();
  let cut = false;
  let accepted = 0;
  let forwarded = 0;

  const finish = (c: Connection) => {
    c.client.destroy();
    c.upstream.destroy();
    connections.delete(c);
  };
  const server = createServer((client) => {
    accepted++;
    const upstream = connect({
      host: target.host,
      port: target.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    const c: Connection = {
      client,
      upstream,
      held: cut,
      toServer: [],
      toClient: [],
      clientGone: false,
      serverGone: false,
    };
    connections.add(c);
    client.on("data", (d: Buffer) => {
      if (c.held) c.toServer.push(d);
      else {
        forwarded += d.length;
        upstream.write(d);
      }
    });
    upstream.on("data", (d: Buffer) => {
      if (c.held) c.toClient.push(d);
      else client.write(d);
    });
    const clientGone = () => {
      c.clientGone = true;
      if (!c.held) finish(c);
    };
    const serverGone = () => {
      c.serverGone = true;
      if (!c.held) {
        client.end();
        connections.delete(c);
      }
    };
    client.on("end", clientGone);
    client.on("close", clientGone);
    client.on("error", clientGone);
    upstream.on("end", serverGone);
    upstream.on("close", serverGone);
    upstream.on("error", serverGone);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy: no port");

  return {
    url: `https://127.0.0.1:${address.port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return connections.size;
    },
    get forwardedSinceHeal() {
      return forwarded;
    },
    blackHole() {
      cut = true;
      for (const c of connections) c.held = true;
    },
    blackHoleExisting() {
      for (const c of connections) c.held = true;
    },
    heal() {
      cut = false;
      forwarded = 0;
      for (const c of [...connections]) {
        if (!c.held) continue;
        c.held = false;
        if (c.clientGone) {
          finish(c); // the client reset it: what it had sent is lost
          continue;
        }
        for (const d of c.toServer.splice(0)) {
          forwarded += d.length;
          c.upstream.write(d);
        }
        for (const d of c.toClient.splice(0)) c.client.write(d);
        if (c.serverGone) {
          c.client.end();
          connections.delete(c);
        }
      }
    },
    async close() {
      for (const c of [...connections]) finish(c);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A copy of a kubeconfig whose current cluster is reached through the proxy. */
export function kubeconfigThrough(source: k8s.KubeConfig, proxy: TcpProxy): k8s.KubeConfig {
  const current = source.getCurrentCluster();
  if (current === null) throw new Error("no current cluster");
  const config = new k8s.KubeConfig();
  config.loadFromOptions({
    clusters: source
      .getClusters()
      .map((c) => (c.name === current.name ? { ...c, server: proxy.url } : c)),
    users: source.getUsers(),
    contexts: source.getContexts(),
    currentContext: source.getCurrentContext(),
  });
  return config;
}
