// What the process kubelet runs for a container: pure functions from a Pod
// spec to a local command line, table-tested without a cluster. Only this
// project's own images are runnable; anything else is reported as waiting
// with a reason, the way a kubelet reports an image it cannot pull.
import type { V1Container, V1EnvVar, V1Pod } from "@kubernetes/client-node";

export const coderImage = /^ghcr\.io\/coder\/coder(?:[:@-]|$)/;
export const coderMetricsImage = /^ghcr\.io\/coder-metrics\/coder-metrics(?:[:@]|$)/;

export interface ProcessSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export type ContainerPlan =
  | { ok: true; kind: "coderd" | "exporter" | "controller"; process: ProcessSpec }
  | { ok: false; reason: string; message: string };

export interface PlanInput {
  pod: V1Pod;
  container: V1Container;
  podIp: string;
  /** Resolved environment of the container (plain values, $(VAR) already expanded). */
  env: Record<string, string>;
  /** mountPath → local directory holding the volume's files. */
  mounts: Array<{ mountPath: string; dir: string }>;
  node: string;
  repoRoot: string;
  /** The coderd stand-in's workspace count. */
  coderWorkspaces: number;
  /** For the controller: a kubeconfig holding the pod's ServiceAccount token. */
  kubeconfigPath?: string;
}

/** Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes, unknown ones stay. */
export function expandVars(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g,
    (match, name: string | undefined) => {
      if (name === undefined) return "$";
      return Object.hasOwn(env, name) ? (env[name] ?? "") : match;
    },
  );
}

/**
 * The Pod's own loopback: 127.b.c.d for Pod IP a.b.c.d. Every process shares the
 * machine's lo, where all of 127.0.0.0/8 is local, so each Pod gets an address
 * there that no other Pod uses — what is bound to it is reachable from the Pod's
 * own containers (which are told this address for 127.0.0.1) and not on the Pod IP.
 */
export function podLoopback(podIp: string): string {
  const [, b, c, d] = podIp.split(".");
  return `127.${b}.${c}.${d}`;
}

/**
 * Addresses that mean "this pod" become the pod's own ones, as inside a pod
 * network namespace: every interface (0.0.0.0, [::], no host) → the Pod IP,
 * `--listen=0.0.0.0:2113` → `--listen=198.18.7.3:2113`; loopback (127.0.0.1,
 * localhost, [::1]) → the Pod's loopback, `127.0.0.1:2112` → `127.18.7.3:2112`.
 */
export function mapPodAddress(text: string, podIp: string): string {
  const loopback = podLoopback(podIp);
  return text
    .replace(
      /(^|=|\/\/)(0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\]|\[::1\])(:\d{1,5})/g,
      (_m, before: string, host: string, port: string) =>
        `${before}${/^(0\.0\.0\.0|\[::\])$/.test(host) ? podIp : loopback}${port}`,
    )
    .replace(/(^|=):(\d{1,5})(?=$|\/)/g, (_m, before: string, port: string) => {
      return `${before}${podIp}:${port}`;
    });
}

/** Paths under a volume's mountPath point into the local directory holding it. */
export function mapMountPaths(
  text: string,
  mounts: ReadonlyArray<{ mountPath: string; dir: string }>,
): string {
  // Longest mount path first, so /etc/a/b wins over /etc/a.
  const sorted = [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  for (const { mountPath, dir } of sorted) {
    const base = mountPath.replace(/\/+$/, "");
    const re = new RegExp(`(^|=)${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=$|/)`, "g");
    if (re.test(text)) return text.replace(re, (_m, before: string) => `${before}${dir}`);
  }
  return text;
}

/** The value of a downward-API fieldRef, as the kubelet resolves it. */
export function fieldValue(pod: V1Pod, fieldPath: string, podIp: string, node: string): string {
  const m = pod.metadata ?? {};
  const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (label) {
    const map = label[1] === "labels" ? m.labels : m.annotations;
    return map?.[label[2] ?? ""] ?? "";
  }
  switch (fieldPath) {
    case "metadata.name":
      return m.name ?? "";
    case "metadata.namespace":
      return m.namespace ?? "";
    case "metadata.uid":
      return m.uid ?? "";
    case "spec.nodeName":
      return node;
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "default";
    case "status.podIP":
    case "status.podIPs":
      return podIp;
    case "status.hostIP":
    case "status.hostIPs":
      return "127.0.0.1";
    default:
      return "";
  }
}

/** Env vars whose value needs no API call (value, fieldRef); others come from `lookup`. */
export function resolveEnv(
  pod: V1Pod,
  container: V1Container,
  podIp: string,
  node: string,
  lookup: (env: V1EnvVar) => string | undefined = () => undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = expandVars(e.value, env);
    else if (e.valueFrom?.fieldRef)
      env[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath, podIp, node);
    else {
      const v = lookup(e);
      if (v !== undefined) env[e.name] = v;
    }
  }
  return env;
}

function rewrite(text: string, input: PlanInput): string {
  return mapMountPaths(mapPodAddress(expandVars(text, input.env), input.podIp), input.mounts);
}

/** How to run `container` of `pod` as a local process, or why it cannot be run. */
export function planContainer(input: PlanInput): ContainerPlan {
  const { container, env } = input;
  const image = container.image ?? "";
  const node = process.execPath;
  const baseEnv = (extra: Record<string, string> = {}): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env)) out[k] = rewrite(v, input);
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/tmp", ...out, ...extra };
  };
  if (coderImage.test(image)) {
    // coderd serves metrics only when CODER_PROMETHEUS_ENABLE is true, on
    // CODER_PROMETHEUS_ADDRESS (default 127.0.0.1:2112); --require-env makes the stand-in do the same.
    // Bound to every interface, coderd is reachable on the Pod IP and on its loopback alike:
    // the stand-in then also listens on the Pod's loopback (where the sidecar scrapes it).
    const wanted = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(env.CODER_PROMETHEUS_ADDRESS ?? "");
    const host = wanted?.[1] ?? wanted?.[2];
    const everyInterface = host === "" || host === "0.0.0.0" || host === "::";
    return {
      ok: true,
      kind: "coderd",
      process: {
        command: node,
        args: [
          `${input.repoRoot}/test/support/coder-standin.ts`,
          "--require-env",
          ...(everyInterface
            ? ["--also-address", `${podLoopback(input.podIp)}:${wanted?.[3]}`]
            : []),
          "--address",
          `${podLoopback(input.podIp)}:2112`,
          "--workspaces",
          String(input.coderWorkspaces),
        ],
        env: baseEnv(),
      },
    };
  }
  if (coderMetricsImage.test(image)) {
    if ((container.command ?? []).length > 0) {
      return {
        ok: false,
        reason: "CommandNotSupported",
        message: `the process kubelet runs the coder-metrics image's own entrypoint only (container sets command ${JSON.stringify(container.command)})`,
      };
    }
    const args = (container.args ?? []).map((a) => rewrite(a, input));
    const sub = args[0];
    if (sub === "exporter") {
      return {
        ok: true,
        kind: "exporter",
        process: {
          command: node,
          args: [`${input.repoRoot}/controller/cli.ts`, ...args],
          env: baseEnv(),
        },
      };
    }
    if (sub === "controller") {
      if (input.kubeconfigPath === undefined) {
        return {
          ok: false,
          reason: "NoCredentials",
          message: "no ServiceAccount token for the controller",
        };
      }
      return {
        ok: true,
        kind: "controller",
        process: {
          command: node,
          args: [`${input.repoRoot}/controller/cli.ts`, ...args],
          env: baseEnv({ KUBECONFIG: input.kubeconfigPath }),
        },
      };
    }
    return {
      ok: false,
      reason: "CommandNotSupported",
      message: `the process kubelet runs coder-metrics "exporter" and "controller" only, not ${JSON.stringify(sub ?? "")}`,
    };
  }
  return {
    ok: false,
    reason: "ImageNotSupported",
    message: `the process kubelet has no container runtime: it runs only ghcr.io/coder/coder* (as the Coder stand-in) and ghcr.io/coder-metrics/coder-metrics, not ${image}`,
  };
}

/** The port a probe names: a number, or a container port's name. */
export function probePort(
  container: V1Container,
  port: number | string | undefined,
): number | undefined {
  if (typeof port === "number") return port;
  if (port === undefined) return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}
