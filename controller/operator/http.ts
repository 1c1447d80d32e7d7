// The controller's own endpoint: /metrics (Prometheus), /healthz (the
// process is alive and, when leading, renewing its lease), /readyz (caches
// synced, or standing by for the lease).
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import type { HostPort } from "../common/address.ts";

export interface ProbeServerOptions {
  address: HostPort;
  registry: Registry;
  ready: () => boolean;
  /** undefined when healthy, else why not. */
  unhealthy?: () => string | undefined;
}

export async function startProbeServer(options: ProbeServerOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
      return;
    }
    if (path === "/healthz") {
      const problem = options.unhealthy?.();
      res
        .writeHead(problem === undefined ? 200 : 500, { "content-type": "text/plain" })
        .end(problem === undefined ? "ok\n" : `${problem}\n`);
    } else if (path === "/readyz") {
      const ready = options.ready();
      res
        .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
        .end(ready ? "ok\n" : "not ready\n");
    } else if (path === "/metrics") {
      options.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": options.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  const { host, port } = options.address;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
