// `coder-metrics doctor`: walks a cluster's chain from a CoderMetrics to a
// Prometheus target and prints a checklist with fixes. Exit code 1 when a
// check fails, 2 on a usage error.
import * as k8s from "@kubernetes/client-node";
import { type FlagSpec, type FlagValues, parseFlags, UsageError, usage } from "../common/flags.ts";
import { exitCode, formatReport, runChecks } from "./checks.ts";
import { gather, soleCoderMetrics } from "./gather.ts";

const SUMMARY = `Checks, step by step, why Prometheus does (or does not) scrape Coder:
CoderMetrics → Coder Deployment → coderd settings and rollout → Service endpoints
→ ServiceMonitor → a Prometheus that selects it → (optional) the target is up.`;

const FLAGS: readonly FlagSpec[] = [
  {
    name: "namespace",
    short: "n",
    help: "namespace of the CoderMetrics (default: the kubeconfig context's)",
  },
  { name: "name", help: "the CoderMetrics (default: the only one in the namespace)" },
  { name: "kubeconfig", help: "default: $KUBECONFIG, ~/.kube/config, or in-cluster" },
  {
    name: "prometheus-url",
    help: "also check the target in Prometheus (e.g. http://localhost:9090 after kubectl port-forward svc/prometheus-operated 9090)",
  },
  { name: "output", short: "o", help: "text or json", default: "text" },
];

export async function runDoctor(argv: string[]): Promise<number> {
  const help = usage("doctor", SUMMARY, FLAGS);
  let values: FlagValues;
  try {
    values = parseFlags(argv, FLAGS);
    if (!values.help && values.output !== "text" && values.output !== "json") {
      throw new UsageError("--output must be text or json");
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`coder-metrics doctor: ${err.message}\n\n${help}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const config = new k8s.KubeConfig();
  if (values.kubeconfig) config.loadFromFile(values.kubeconfig);
  else config.loadFromDefault();
  try {
    return await diagnose(config, values);
  } catch (err) {
    const cause = (err as Error).cause;
    console.error(
      `coder-metrics doctor: cannot reach the cluster at ${config.getCurrentCluster()?.server}: ${(err as Error).message}${cause ? ` (${String(cause)})` : ""}`,
    );
    return 1;
  }
}

async function diagnose(config: k8s.KubeConfig, values: FlagValues): Promise<number> {
  const namespace =
    values.namespace ?? config.getContextObject(config.getCurrentContext())?.namespace ?? "default";
  let name = values.name;
  if (name === undefined) {
    const names = await soleCoderMetrics(config, namespace);
    if (names.length !== 1) {
      console.error(
        names.length === 0
          ? `coder-metrics doctor: no CoderMetrics in namespace ${namespace}; pass -n NAMESPACE (kubectl get codermetrics -A)`
          : `coder-metrics doctor: ${names.length} CoderMetrics in ${namespace} (${names.join(", ")}); pass --name`,
      );
      return names.length === 0 ? 1 : 2;
    }
    name = names[0] ?? "";
  }
  const snapshot = await gather(config, namespace, name, values["prometheus-url"]);
  const results = runChecks(snapshot);
  if (values.output === "json")
    console.log(JSON.stringify({ namespace, name, checks: results }, null, 2));
  else process.stdout.write(formatReport(snapshot, results));
  return exitCode(results);
}
