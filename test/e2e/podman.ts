// The process kubelet's container runtime: podman (Debian's, configured by
// test/tools/image.sh), asked through its CLI. Every container the kubelet
// starts carries the label `io.coder-metrics.process-kubelet=<run id>`, so what
// one run started is found, and removed, by that label alone — by the kubelet
// when it stops, and by a reaper process (kubelet-reaper.ts) when the kubelet's
// process ends any other way (Ctrl-C, SIGKILL, a crash).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { join } from "node:path";
import type { Writable } from "node:stream";
import { promisify } from "node:util";

const run = promisify(execFile);

export const kubeletLabel = "io.coder-metrics.process-kubelet";

/** podman, with its output; throws with podman's stderr when it fails. */
export async function podman(args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run("podman", args, {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`podman ${args.join(" ")}: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

export interface ImageFacts {
  ref: string;
  id: string;
  /** Manifest digest (sha256:…). */
  digest: string;
  /** The image's USER ("" = root). */
  user: string;
  created: Date;
}

/** The image `ref` in the local storage, or undefined when it is not there. */
export async function inspectImage(ref: string): Promise<ImageFacts | undefined> {
  const out = await podman(["image", "inspect", ref]).catch(() => undefined);
  if (out === undefined) return undefined;
  const [image] = JSON.parse(out) as Array<{
    Id: string;
    Digest: string;
    Created: string;
    Config?: { User?: string };
  }>;
  if (image === undefined) return undefined;
  return {
    ref,
    id: image.Id,
    digest: image.Digest,
    user: image.Config?.User ?? "",
    created: new Date(image.Created),
  };
}

/** Containers (running or not) carrying `label=value`: their ids. */
export async function containersLabelled(label: string, value: string): Promise<string[]> {
  const out = await podman(["ps", "--all", "--quiet", "--filter", `label=${label}=${value}`]);
  return out.split("\n").filter((id) => id !== "");
}

/** podman version (for the Node's containerRuntimeVersion). */
export async function podmanVersion(): Promise<string> {
  return (await podman(["version", "--format", "{{.Client.Version}}"])).trim();
}

/**
 * Stops a container as a kubelet does — SIGTERM (the image's stop signal), then
 * SIGKILL after `graceSeconds` — and makes sure it is gone. `client` is its
 * attached `podman run`, which exits with it.
 */
export async function stopContainer(
  name: string,
  client: ChildProcess | undefined,
  graceSeconds: number,
): Promise<void> {
  const exited =
    client === undefined || client.exitCode !== null || client.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((r) => client.once("exit", () => r()));
  // Not created yet is fine: the client is killed below, and rm catches what it left.
  await podman(
    ["stop", "--ignore", `--time=${graceSeconds}`, name],
    (graceSeconds + 30) * 1000,
  ).catch(() => undefined);
  const timer = setTimeout(() => client?.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
  await podman(["rm", "--force", "--ignore", "--time=0", name]).catch(() => undefined);
}

export interface Reaper {
  /** A process the kubelet started: killed if the kubelet's process ends first. */
  track(pid: number): void;
  untrack(pid: number): void;
  /**
   * Ends the reaper: it kills what is still tracked and removes whatever still
   * carries the label, then exits. `orderly`: everything was stopped already.
   */
  close(orderly: boolean): Promise<void>;
}

/**
 * Starts kubelet-reaper.ts (for this run's container label, if any) in a
 * session of its own — a Ctrl-C to the terminal does not reach it — holding a
 * pipe from this process: when this process ends, however it ends, the pipe
 * closes and the reaper ends what the kubelet started.
 */
export function startReaper(labelValue: string | undefined, logDir: string): Reaper {
  const log = openSync(join(logDir, "kubelet-reaper.log"), "a");
  const child = spawn(
    process.execPath,
    [
      join(import.meta.dirname, "kubelet-reaper.ts"),
      ...(labelValue !== undefined ? [`${kubeletLabel}=${labelValue}`] : []),
    ],
    { detached: true, stdio: ["pipe", log, log] },
  );
  // Neither the child nor its pipe keeps this process alive.
  child.unref();
  const stdin = child.stdin as Writable & { unref?: () => void };
  stdin.unref?.();
  stdin.on("error", () => undefined);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    track: (pid) => stdin.write(`pid ${pid}\n`),
    untrack: (pid) => stdin.write(`gone ${pid}\n`),
    async close(orderly) {
      stdin.end(orderly ? "stopped\n" : "");
      const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
