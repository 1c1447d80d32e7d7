// `coder-metrics controller`: flags → leader election → the controller.
import { hostname } from "node:os";
import { type HostPort, parseListen } from "../common/address.ts";
import { type FlagSpec, parseFlags, UsageError, usage } from "../common/flags.ts";
import { createLogger, isLevel, type Level } from "../common/log.ts";
import { parseDuration } from "../common/units.ts";
import { version } from "../common/version.ts";
import { imagePolicy, imageRepository } from "../desired/image-policy.ts";
import { Controller } from "./controller.ts";
import { startProbeServer } from "./http.ts";
import { type ClusterAccess, loadClusterAccess } from "./kube-config.ts";
import { checkLeaderTiming, LeaderElector } from "./leader.ts";
import { createControllerMetrics } from "./metrics.ts";

export const defaultExporterImage = `ghcr.io/coder-metrics/coder-metrics:${version}`;

const SUMMARY =
  "Watches CoderMetrics resources and wires the Coder Deployments they select to Prometheus.";

const FLAGS: readonly FlagSpec[] = [
  { name: "kubeconfig", help: "kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster" },
  {
    name: "watch-namespaces",
    help: "only these namespaces, comma-separated (namespaced RBAC); default all",
    env: "WATCH_NAMESPACES",
    default: "",
  },
  {
    name: "exporter-image",
    help: "image of the injected exporter",
    env: "CODER_METRICS_EXPORTER_IMAGE",
    default: defaultExporterImage,
  },
  {
    name: "allowed-exporter-images",
    help: "images a CoderMetrics may set as spec.exporter.image, comma-separated: a repository (any tag), an exact image, a path ending in / or a glob (* within a path segment, ** across); the --exporter-image repository is always allowed",
    env: "CODER_METRICS_ALLOWED_EXPORTER_IMAGES",
    default: "",
  },
  { name: "metrics-address", help: "/metrics, /healthz, /readyz", default: "0.0.0.0:8080" },
  { name: "leader-elect", help: "take a Lease before working", default: "true" },
  {
    name: "leader-election-namespace",
    help: "namespace of the Lease",
    env: "POD_NAMESPACE",
    default: "default",
  },
  { name: "leader-election-id", help: "Lease name", default: "coder-metrics-controller" },
  {
    name: "lease-duration",
    help: "how long a standby waits before taking an unrenewed lease",
    default: "15s",
  },
  {
    name: "renew-deadline",
    help: "how long the leader retries renewing before it gives up",
    default: "10s",
  },
  { name: "retry-period", help: "how often to try to acquire or renew", default: "2s" },
  { name: "request-timeout", help: "deadline of every Kubernetes API request", default: "30s" },
  {
    name: "cache-sync-timeout",
    help: "how long to wait for the caches' first lists before exiting",
    default: "2m",
  },
  { name: "workers", help: "concurrent reconciles", default: "4" },
  { name: "resync", help: "reconcile everything at least this often", default: "10m" },
  { name: "log-level", help: "debug, info, warn, error", default: "info" },
];

interface ControllerFlags {
  kubeconfig: string | undefined;
  watchNamespaces: string[];
  exporterImage: string;
  allowedExporterImages: string[];
  metricsAddress: HostPort;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  requestTimeoutMs: number;
  cacheSyncTimeoutMs: number;
  workers: number;
  resyncMs: number;
  logLevel: Level;
}

function parseControllerFlags(argv: readonly string[]): ControllerFlags | "help" {
  const v = parseFlags(argv, FLAGS);
  if (v.help) return "help";
  const workers = Number(v.workers);
  if (!Number.isInteger(workers) || workers < 1) {
    throw new UsageError(`--workers: want a whole number >= 1, got "${v.workers}"`);
  }
  const exporterImage = v["exporter-image"]!;
  const allowedExporterImages = v["allowed-exporter-images"]!.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (imageRepository(exporterImage) === undefined) {
    throw new UsageError(`--exporter-image: "${exporterImage}" is not an image reference`);
  }
  try {
    imagePolicy(exporterImage, allowedExporterImages);
  } catch (err) {
    throw new UsageError(`--allowed-exporter-images: ${(err as Error).message}`);
  }
  const logLevel = v["log-level"]!;
  if (!isLevel(logLevel)) throw new UsageError(`--log-level: unknown level "${logLevel}"`);
  const timing = {
    leaseDurationMs: parseDuration("lease-duration", v["lease-duration"]!),
    renewDeadlineMs: parseDuration("renew-deadline", v["renew-deadline"]!),
    retryPeriodMs: parseDuration("retry-period", v["retry-period"]!),
  };
  const invalid = checkLeaderTiming(timing);
  if (invalid !== undefined)
    throw new UsageError(`--lease-duration, --renew-deadline, --retry-period: ${invalid}`);
  return {
    kubeconfig: v.kubeconfig || undefined,
    watchNamespaces: v["watch-namespaces"]!.split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    exporterImage,
    allowedExporterImages,
    metricsAddress: parseListen("metrics-address", v["metrics-address"]!),
    leaderElect: v["leader-elect"] !== "false",
    leaderElectionNamespace: v["leader-election-namespace"]!,
    leaderElectionId: v["leader-election-id"]!,
    ...timing,
    requestTimeoutMs: parseDuration("request-timeout", v["request-timeout"]!),
    cacheSyncTimeoutMs: parseDuration("cache-sync-timeout", v["cache-sync-timeout"]!),
    workers,
    resyncMs: parseDuration("resync", v.resync!),
    logLevel,
  };
}

export async function runController(argv: string[]): Promise<number> {
  const env = process.env;
  let flags: ControllerFlags | "help";
  try {
    flags = parseControllerFlags(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(
      `coder-metrics controller: ${err.message}\n\n${usage("controller", SUMMARY, FLAGS)}`,
    );
    return 2;
  }
  if (flags === "help") {
    process.stdout.write(usage("controller", SUMMARY, FLAGS));
    return 0;
  }
  const log = createLogger({ level: flags.logLevel, base: { component: "controller" } });
  let kubeconfig: ClusterAccess;
  try {
    kubeconfig = await loadClusterAccess(flags.kubeconfig);
  } catch (err) {
    process.stderr.write(`coder-metrics controller: ${(err as Error).message}\n`);
    return 2;
  }
  const identity = env.POD_NAME ?? `${hostname()}-${process.pid}`;
  const metrics = createControllerMetrics();
  const { watchNamespaces, leaderElect } = flags;
  let elector: LeaderElector | undefined;
  const controller = new Controller({
    kubeconfig,
    watchNamespaces,
    exporterImage: flags.exporterImage,
    allowedExporterImages: flags.allowedExporterImages,
    log,
    metrics,
    identity,
    workers: flags.workers,
    resyncMs: flags.resyncMs,
    requestTimeoutMs: flags.requestTimeoutMs,
    cacheSyncTimeoutMs: flags.cacheSyncTimeoutMs,
    // The leader's requests stop where its lease may end.
    ...(leaderElect ? { workDeadline: () => elector?.workDeadline() ?? -Infinity } : {}),
  });
  let shuttingDown = false;
  const startWorking = () => {
    controller.start().catch((err: unknown) => {
      if (shuttingDown) return;
      // As controller-runtime: caches that cannot sync end the process (and kubelet restarts it).
      log.error("cannot start", { error: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    });
  };
  if (leaderElect) {
    elector = new LeaderElector(kubeconfig, metrics, {
      namespace: flags.leaderElectionNamespace,
      name: flags.leaderElectionId,
      identity,
      log,
      leaseDurationMs: flags.leaseDurationMs,
      renewDeadlineMs: flags.renewDeadlineMs,
      retryPeriodMs: flags.retryPeriodMs,
      onStartedLeading: startWorking,
      // As controller-runtime: a replica that lost the lease exits and restarts clean.
      onStoppedLeading: () => process.exit(1),
    });
  }

  const server = await startProbeServer({
    address: flags.metricsAddress,
    registry: metrics.registry,
    // A standby is ready: it is healthy and waiting for the lease. A leader is ready once synced.
    ready: () => (elector !== undefined && !elector.isLeader) || controller.hasSynced,
    unhealthy: () =>
      elector === undefined || elector.healthy()
        ? undefined
        : "leading, but the lease has not been renewed for longer than its duration",
  });
  log.info("starting", {
    version,
    identity,
    exporterImage: flags.exporterImage,
    allowedExporterImages: flags.allowedExporterImages,
    leaderElect,
    watchNamespaces,
  });
  if (elector) elector.start();
  else {
    metrics.leader.set(1); // the only replica: it works without a lease
    startWorking();
  }

  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  log.info("shutting down");
  shuttingDown = true;
  // The work first, then the lease (client-go's ReleaseOnCancel contract): a standby must not
  // start while this replica still writes.
  await controller.stop();
  await elector?.release();
  server.close();
  return 0;
}
