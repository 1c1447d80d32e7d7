// `coder-metrics scrape-config`: a ready-to-paste Prometheus scrape_configs
// job for a CoderMetrics, for Prometheus without the Operator.
import { readFileSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { parse } from "yaml";
import { type FlagSpec, parseCommandLine, UsageError, usage } from "../common/flags.ts";
import { resolveSpec } from "../api/defaults.ts";
import { apiVersion, type CoderMetrics, kind } from "../api/v1alpha1.ts";
import {
  kubernetesScrapeJob,
  scrapeConfigYaml,
  staticScrapeJob,
} from "../desired/scrape-config.ts";

const SUMMARY = `Prints a Prometheus scrape_configs job that scrapes what the CoderMetrics sets up:
kubernetes_sd (role endpointslice) for a Prometheus in the cluster, or with
--static host:port,... a static_configs job for a Prometheus outside it.`;

const FLAGS: readonly FlagSpec[] = [
  { name: "file", short: "f", help: "read the CoderMetrics from a YAML file (- for stdin)" },
  { name: "namespace", short: "n", help: "read it from the cluster (current kubeconfig context)" },
  { name: "static", help: "comma-separated host:port targets for static_configs" },
];
const SYNOPSIS = "(-f CR.yaml | -n NAMESPACE NAME) [--static TARGET,...]";

async function loadCr(
  file: string | undefined,
  namespace: string | undefined,
  name: string | undefined,
): Promise<CoderMetrics> {
  if (file !== undefined) {
    const doc = parse(readFileSync(file === "-" ? 0 : file, "utf8")) as CoderMetrics | null;
    if (doc?.kind !== kind)
      throw new Error(`${file}: not a ${kind} (kind: ${doc?.kind ?? "none"})`);
    return {
      ...doc,
      metadata: { ...doc.metadata, namespace: doc.metadata.namespace ?? namespace ?? "default" },
    };
  }
  if (namespace === undefined || name === undefined)
    throw new Error("give -f FILE, or -n NAMESPACE and a NAME");
  const config = new k8s.KubeConfig();
  config.loadFromDefault();
  const objects = k8s.KubernetesObjectApi.makeApiClient(config);
  return objects.read<CoderMetrics & k8s.KubernetesObject>({
    apiVersion,
    kind,
    metadata: { name, namespace },
  });
}

export async function runScrapeConfig(argv: string[]): Promise<number> {
  const help = usage("scrape-config", SUMMARY, FLAGS, { synopsis: SYNOPSIS });
  let values: Record<string, string | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseCommandLine(argv, FLAGS, { positionals: true }));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`coder-metrics scrape-config: ${err.message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  try {
    const cr = await loadCr(values.file, values.namespace, positionals[0]);
    const input = { cr, spec: resolveSpec(cr.spec) };
    const targets = values.static
      ?.split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    const job = targets?.length ? staticScrapeJob(input, targets) : kubernetesScrapeJob(input);
    process.stdout.write(scrapeConfigYaml(job));
    return 0;
  } catch (err) {
    console.error(
      `coder-metrics scrape-config: ${err instanceof Error ? err.message : String(err)}`,
    );
    return 1;
  }
}
