// What the process kubelet runs for a container: pure functions from a Pod
// spec to a local command line (`node …` or `podman run …`), table-tested
// without a cluster. Only this project's own images are runnable; anything
// else is reported as waiting with a reason, the way a kubelet reports an
// image it cannot pull.
import type { V1Container, V1EnvVar, V1Pod } from "@kubernetes/client-node";
import { quantityBytes } from "../../controller/desired/exporter-heap.ts";

export const coderImage = /^ghcr\.io\/coder\/coder(?:[:@-]|$)/;
export const coderMetricsImage = /^ghcr\.io\/coder-metrics\/coder-metrics(?:[:@]|$)/;

export interface ProcessSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** A container run from a local image by podman (`podmanRunArgs` turns it into a command line). */
export interface ContainerRun {
  /** What podman runs: the local image's id when the run pinned one, else its name. */
  image: string;
  /** The local image's name (the Pod's image, resolved by `localImageRef`). */
  imageName: string;
  /** The container's `command`, replacing the image's ENTRYPOINT; unset keeps it. */
  entrypoint?: string[];
  args: string[];
  /** The Pod's env for the container; the image's own (NODE_OPTIONS, NODE_ENV) stays unless overridden. */
  env: Record<string, string>;
  /** uid[:gid] from the securityContext; unset runs as the image's USER. */
  user?: string;
  groupAdd: number[];
  readOnlyRootFilesystem: boolean;
  noNewPrivileges: boolean;
  capDrop: string[];
  capAdd: string[];
  memoryBytes?: number;
  cpus?: number;
  workdir?: string;
  hostname: string;
  mounts: Array<{ source: string; destination: string; readOnly: boolean }>;
}

export type ContainerKind = "coderd" | "exporter" | "controller" | "command";

export type ContainerPlan =
  | { ok: true; kind: ContainerKind; process: ProcessSpec; container?: undefined }
  | { ok: true; kind: ContainerKind; container: ContainerRun; process?: undefined }
  | { ok: false; reason: string; message: string };

/** What the kubelet found in the local image storage for a Pod's image. */
export type LocalImage =
  | { found: true; ref: string; id?: string; user: string }
  | { found: false; ref: string | undefined };

export interface PlanInput {
  pod: V1Pod;
  container: V1Container;
  podIp: string;
  /** Resolved environment of the container (plain values, $(VAR) already expanded). */
  env: Record<string, string>;
  /**
   * mountPath → local directory holding the volume's files (with a subPath, that
   * file or folder); readOnly as a kubelet mounts it.
   */
  mounts: Array<{ mountPath: string; dir: string; readOnly?: boolean }>;
  node: string;
  repoRoot: string;
  /** The coderd stand-in's workspace count. */
  coderWorkspaces: number;
  /** For the controller: a kubeconfig holding the pod's ServiceAccount token. */
  kubeconfigPath?: string;
  /**
   * "podman": coder-metrics images run as containers from the local image
   * (`localImage`), as the Pod spec says; "process" (default): from the sources.
   */
  runtime?: "process" | "podman";
  localImage?: LocalImage;
  /** Env a kubelet gives every container (KUBERNETES_SERVICE_HOST/PORT), added as is. */
  serviceEnv?: Record<string, string>;
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

/**
 * The local image for a Pod's image: its repository mapped through
 * `localRepositories` (ghcr.io/coder-metrics/coder-metrics →
 * localhost/coder-metrics), the tag kept (none means latest). A digest names
 * one published build, which a local build is not: undefined.
 */
export function localImageRef(
  image: string,
  localRepositories: Readonly<Record<string, string>>,
): string | undefined {
  if (image.includes("@")) return undefined;
  const slash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  const [repository, tag] =
    colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, "latest"];
  const local = localRepositories[repository];
  return local === undefined ? undefined : `${local}:${tag}`;
}

/** CPU cores of a Kubernetes quantity (500m, 2, 0.5); undefined when unreadable. */
export function quantityCpus(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === "number") return q;
  const m = /^([0-9]+(?:\.[0-9]*)?)(m?)$/.exec(q);
  if (m === null) return undefined;
  return Number(m[1]) / (m[2] === "m" ? 1000 : 1);
}

type Security =
  | {
      ok: true;
      user?: string;
      groupAdd: number[];
      readOnlyRootFilesystem: boolean;
      noNewPrivileges: boolean;
      capDrop: string[];
      capAdd: string[];
    }
  | { ok: false; reason: string; message: string };

/**
 * The container's effective security context (its own fields over the Pod's),
 * and the kubelet's runAsNonRoot check against the uid it will run as — the
 * securityContext's, else the image's USER, which must then be numeric.
 */
export function containerSecurity(pod: V1Pod, container: V1Container, imageUser: string): Security {
  const ps = pod.spec?.securityContext ?? {};
  const cs = container.securityContext ?? {};
  const uid = cs.runAsUser ?? ps.runAsUser;
  const gid = cs.runAsGroup ?? ps.runAsGroup;
  if (cs.runAsNonRoot ?? ps.runAsNonRoot) {
    const imageUid = /^(\d+)(?::\d+)?$/.exec(imageUser)?.[1];
    const effective = uid ?? (imageUid === undefined ? undefined : Number(imageUid));
    const who = `pod: ${pod.metadata?.namespace}/${pod.metadata?.name}, container: ${container.name}`;
    if (effective === undefined) {
      return {
        ok: false,
        reason: "CreateContainerConfigError",
        message: `container has runAsNonRoot and image has non-numeric user (${imageUser || "root"}), cannot verify user is non-root (${who})`,
      };
    }
    if (effective === 0) {
      return {
        ok: false,
        reason: "CreateContainerConfigError",
        message: `container has runAsNonRoot and image will run as root (${who})`,
      };
    }
  }
  return {
    ok: true,
    ...(uid !== undefined ? { user: gid !== undefined ? `${uid}:${gid}` : String(uid) } : {}),
    groupAdd: [...(ps.supplementalGroups ?? []), ...(ps.fsGroup !== undefined ? [ps.fsGroup] : [])],
    readOnlyRootFilesystem: cs.readOnlyRootFilesystem ?? false,
    noNewPrivileges: cs.allowPrivilegeEscalation === false,
    capDrop: cs.capabilities?.drop ?? [],
    capAdd: cs.capabilities?.add ?? [],
  };
}

/** A Pod's hostname: its name, cut to a DNS label as the kubelet does. */
function podHostname(pod: V1Pod): string {
  return (pod.metadata?.name ?? "pod").slice(0, 63).replace(/[-.]+$/, "");
}

/**
 * A coder-metrics container from the local image, as the Pod spec says: the
 * image's entrypoint (or `command`), args, env, user, read-only root,
 * capabilities, memory/CPU limits and mounts. The one change: addresses that
 * mean "this Pod" become the Pod's own (mapPodAddress), since every container
 * shares the test's network namespace (`--network host`) instead of one per Pod.
 */
function planImageContainer(input: PlanInput, kind: ContainerKind): ContainerPlan {
  const { pod, container, env } = input;
  const image = container.image ?? "";
  const local = input.localImage;
  if (local === undefined || !local.found) {
    return {
      ok: false,
      reason: "ErrImageNeverPull",
      message:
        local?.ref === undefined
          ? `Container image "${image}" has no local build (a digest names a published image); the process kubelet never pulls`
          : `Container image "${image}" is not present locally as ${local.ref} (run make image); the process kubelet never pulls`,
    };
  }
  const security = containerSecurity(pod, container, local.user);
  if (!security.ok) return security;
  const map = (text: string) => mapPodAddress(expandVars(text, env), input.podIp);
  const mapped: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) mapped[k] = mapPodAddress(v, input.podIp);
  const limits = container.resources?.limits ?? {};
  const memoryBytes = quantityBytes(limits.memory);
  const cpus = quantityCpus(limits.cpu);
  const { ok: _ok, ...securityFields } = security;
  return {
    ok: true,
    kind,
    container: {
      image: local.id ?? local.ref,
      imageName: local.ref,
      ...(container.command?.length ? { entrypoint: container.command.map(map) } : {}),
      args: (container.args ?? []).map(map),
      env: { ...mapped, ...input.serviceEnv },
      ...securityFields,
      ...(memoryBytes !== undefined ? { memoryBytes } : {}),
      ...(cpus !== undefined ? { cpus } : {}),
      ...(container.workingDir ? { workdir: container.workingDir } : {}),
      hostname: podHostname(pod),
      mounts: input.mounts.map((m) => ({
        source: m.dir,
        destination: m.mountPath,
        readOnly: m.readOnly ?? false,
      })),
    },
  };
}

/** `podman run` for a planned container: attached (its output is the log), removed when it exits. */
export function podmanRunArgs(
  run: ContainerRun,
  options: { name: string; labels: Record<string, string>; cidfile: string },
): string[] {
  return [
    "run",
    "--rm",
    "--replace",
    "--name",
    options.name,
    "--cidfile",
    options.cidfile,
    // Never a registry: the image is the one `make image` built.
    "--pull=never",
    // The test's own network namespace: no bridge, no CNI (see README, "Pod IPs").
    "--network=host",
    `--hostname=${run.hostname}`,
    ...Object.entries(options.labels).map(([k, v]) => `--label=${k}=${v}`),
    ...(run.user !== undefined ? [`--user=${run.user}`] : []),
    ...run.groupAdd.map((g) => `--group-add=${g}`),
    // readOnlyRootFilesystem: all of it, without podman's writable /tmp, /run and /var/tmp.
    ...(run.readOnlyRootFilesystem ? ["--read-only", "--read-only-tmpfs=false"] : []),
    ...(run.noNewPrivileges ? ["--security-opt=no-new-privileges"] : []),
    ...run.capDrop.map((c) => `--cap-drop=${c}`),
    ...run.capAdd.map((c) => `--cap-add=${c}`),
    ...(run.memoryBytes !== undefined ? [`--memory=${Math.floor(run.memoryBytes)}b`] : []),
    ...(run.cpus !== undefined ? [`--cpus=${run.cpus}`] : []),
    ...(run.workdir !== undefined ? [`--workdir=${run.workdir}`] : []),
    ...run.mounts.map(
      (m) =>
        `--mount=type=bind,source=${m.source},destination=${m.destination}${m.readOnly ? ",ro=true" : ""}`,
    ),
    ...Object.entries(run.env).map(([k, v]) => `--env=${k}=${v}`),
    ...(run.entrypoint !== undefined ? [`--entrypoint=${JSON.stringify(run.entrypoint)}`] : []),
    run.image,
    ...run.args,
  ];
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
  if (coderMetricsImage.test(image) && input.runtime === "podman") {
    const sub = container.command?.length ? undefined : container.args?.[0];
    return planImageContainer(input, sub === "exporter" || sub === "controller" ? sub : "command");
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
    message:
      input.runtime === "podman"
        ? `the process kubelet runs only ghcr.io/coder/coder* (as the Coder stand-in) and ghcr.io/coder-metrics/coder-metrics (the image make image builds), not ${image}`
        : `the process kubelet has no container runtime: it runs only ghcr.io/coder/coder* (as the Coder stand-in) and ghcr.io/coder-metrics/coder-metrics (from the sources), not ${image}`,
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
