// `coder-metrics doctor`: walks a cluster's chain from a CoderMetrics to a
// Prometheus target and prints a checklist with fixes. Exit code 1 when a
// check fails, 2 on a usage error.
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { exitCode, formatReport, runChecks } from "./checks.ts";
import { gather, soleCoderMetrics } from "./gather.ts";

const usage = `usage: coder-metrics doctor [flags]

Checks, step by step, why Prometheus does (or does not) scrape Coder:
CoderMetrics → Coder Deployment → coderd settings and rollout → Service endpoints
→ ServiceMonitor → a Prometheus that selects it → (optional) the target is up.

flags:
  -n, --namespace NS        namespace of the CoderMetrics (default: the kubeconfig context's)
      --name NAME           the CoderMetrics (default: the only one in the namespace)
      --kubeconfig PATH     default: $KUBECONFIG, ~/.kube/config, or in-cluster
      --prometheus-url URL  also check the target in Prometheus (e.g. http://localhost:9090
                            after kubectl port-forward svc/prometheus-operated 9090)
  -o, --output FORMAT       text (default) or json`;

export async function runDoctor(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(argv).values;
  } catch (err) {
    console.error(`coder-metrics doctor: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (values.output !== "text" && values.output !== "json") {
    console.error(`coder-metrics doctor: --output must be text or json\n\n${usage}`);
    return 2;
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

async function diagnose(
  config: k8s.KubeConfig,
  values: ReturnType<typeof parse>["values"],
): Promise<number> {
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

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      namespace: { type: "string", short: "n" },
      name: { type: "string" },
      kubeconfig: { type: "string" },
      "prometheus-url": { type: "string" },
      output: { type: "string", short: "o", default: "text" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
}
