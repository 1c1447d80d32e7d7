// `coder-metrics controller`: flags → leader election → the controller.
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { version } from "../version.ts";
import { Controller } from "./controller.ts";
import { startProbeServer } from "./http.ts";
import { Kube } from "./kube.ts";
import { reuseConnections } from "./kube-config.ts";
import { LeaderElector } from "./leader.ts";
import { createLogger, type Level } from "./log.ts";
import { createControllerMetrics } from "./metrics.ts";

export const defaultExporterImage = `ghcr.io/coder-metrics/coder-metrics:${version}`;

const usage = `usage: coder-metrics controller [flags]

Watches CoderMetrics resources and wires the Coder Deployments they select to Prometheus.

flags (each also read from the environment variable in brackets):
  --kubeconfig PATH               kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster
  --watch-namespaces A,B          only these namespaces (namespaced RBAC) [WATCH_NAMESPACES]; default all
  --exporter-image IMAGE          image of the injected exporter [CODER_METRICS_EXPORTER_IMAGE]
                                  default ${defaultExporterImage}
  --metrics-address HOST:PORT     /metrics, /healthz, /readyz (default 0.0.0.0:8080)
  --leader-elect BOOL             take a Lease before working (default true)
  --leader-election-namespace NS  [POD_NAMESPACE] (default "default")
  --leader-election-id NAME       Lease name (default coder-metrics-controller)
  --lease-duration DURATION       how long a standby waits before taking an unrenewed lease (default 15s)
  --renew-deadline DURATION       how long the leader retries renewing before it gives up (default 10s)
  --retry-period DURATION         how often to try to acquire or renew (default 2s)
  --workers N                     concurrent reconciles (default 2)
  --resync DURATION               reconcile everything at least this often (default 10m)
  --log-level LEVEL               debug, info, warn, error (default info)`;

function duration(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) throw new Error(`invalid duration "${text}" (want e.g. 30s, 10m)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
  return Number(match[1]) * unit;
}

export async function runController(argv: string[]): Promise<number> {
  const env = process.env;
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      "watch-namespaces": { type: "string", default: env.WATCH_NAMESPACES ?? "" },
      "exporter-image": {
        type: "string",
        default: env.CODER_METRICS_EXPORTER_IMAGE ?? defaultExporterImage,
      },
      "metrics-address": { type: "string", default: "0.0.0.0:8080" },
      "leader-elect": { type: "string", default: "true" },
      "leader-election-namespace": { type: "string", default: env.POD_NAMESPACE ?? "default" },
      "leader-election-id": { type: "string", default: "coder-metrics-controller" },
      "lease-duration": { type: "string", default: "15s" },
      "renew-deadline": { type: "string", default: "10s" },
      "retry-period": { type: "string", default: "2s" },
      workers: { type: "string", default: "2" },
      resync: { type: "string", default: "10m" },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const log = createLogger({
    level: values["log-level"] as Level,
    base: { component: "controller" },
  });
  const kubeconfig = new k8s.KubeConfig();
  if (values.kubeconfig) kubeconfig.loadFromFile(values.kubeconfig);
  else kubeconfig.loadFromDefault();
  reuseConnections(kubeconfig);
  const identity = env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const metrics = createControllerMetrics();
  const watchNamespaces = values["watch-namespaces"]
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const controller = new Controller({
    kubeconfig,
    watchNamespaces,
    exporterImage: values["exporter-image"],
    log,
    metrics,
    identity,
    workers: Number(values.workers),
    resyncMs: duration(values.resync),
  });
  let synced = false;
  const startWorking = async () => {
    metrics.leader.set(1);
    await controller.start();
    synced = true;
  };
  const leaderElect = values["leader-elect"] !== "false";
  const elector = leaderElect
    ? new LeaderElector(new Kube(kubeconfig, metrics), {
        namespace: values["leader-election-namespace"],
        name: values["leader-election-id"],
        identity,
        log,
        leaseDurationMs: duration(values["lease-duration"]),
        renewDeadlineMs: duration(values["renew-deadline"]),
        retryPeriodMs: duration(values["retry-period"]),
        onStartedLeading: startWorking,
        onStoppedLeading: () => {
          // As controller-runtime does: a replica that lost the lease exits and restarts clean.
          metrics.leader.set(0);
          process.exit(1);
        },
      })
    : undefined;

  const server = await startProbeServer({
    address: values["metrics-address"],
    registry: metrics.registry,
    // A standby is ready: it is healthy and waiting for the lease.
    ready: () => synced || (elector !== undefined && !elector.isLeader),
  });
  log.info("starting", {
    version,
    identity,
    exporterImage: values["exporter-image"],
    leaderElect,
    watchNamespaces,
  });
  if (elector) elector.start();
  else await startWorking();

  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info("shutting down");
  await elector?.release();
  await controller.stop();
  server.close();
  return 0;
}
