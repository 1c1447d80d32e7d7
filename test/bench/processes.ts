// Processes the benchmarks run: the exporter (as shipped when built) and the
// Coder stand-in, each announcing itself with a JSON log line.
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");

/**
 * The exporter as shipped (dist/, compiled) when that build is newer than the
 * exporter's sources; otherwise the TypeScript sources (type stripping costs
 * ~30 MB of RSS on its own, so RSS figures are then pessimistic).
 */
export async function exporterEntry(): Promise<{ script: string; label: string }> {
  const dist = join(ROOT, "dist/controller/cli.js");
  try {
    const built = (await stat(dist)).mtimeMs;
    if (built >= (await newestSource())) {
      return { script: "dist/controller/cli.js", label: "dist (compiled)" };
    }
  } catch {
    // no build
  }
  return {
    script: "controller/cli.ts",
    label: "sources (run `npm run build` first for production figures)",
  };
}

/** When a file of controller/ (any depth) last changed: dist/ older than this is stale. */
export async function newestSource(): Promise<number> {
  let newest = 0;
  for (const f of await readdir(join(ROOT, "controller"), { recursive: true })) {
    if (f.endsWith(".ts") || f.endsWith(".json")) {
      newest = Math.max(newest, (await stat(join(ROOT, "controller", f))).mtimeMs);
    }
  }
  return newest;
}

/** Spawns a node script and resolves with the child and the first JSON stderr line matching `msg`. */
export function spawnJson(
  args: string[],
  msg: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; line: Record<string, unknown> }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env } });
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(
      () => reject(new Error(`timeout waiting for "${msg}": ${buf}`)),
      60_000,
    );
    child.stderr!.on("data", (d: Buffer) => {
      buf += d.toString();
      for (;;) {
        const nl = buf.indexOf("\n");
        if (nl < 0) break;
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const line = JSON.parse(text) as Record<string, unknown>;
          if (line.msg === msg) {
            clearTimeout(timer);
            resolve({ child, line });
          }
        } catch {
          // not a JSON line
        }
      }
    });
    child.on("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}: ${buf}`)));
  });
}

/** Peak resident set (VmHWM) of a process, in MB (Linux). */
export async function peakRssMb(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface ExporterPair {
  /** The exporter's /metrics URL. */
  url: string;
  exporter: ChildProcess;
  stop(): void;
}

/** The Coder stand-in for N workspaces and the real exporter in front of it, both on loopback. */
export async function startStandinAndExporter(options: {
  workspaces: number;
  config: string;
  exporterArgs?: string[];
  /** Flags for node itself (V8 flags NODE_OPTIONS does not take). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
}): Promise<ExporterPair> {
  const standin = await spawnJson(
    [
      "test/support/coder-standin.ts",
      "--address",
      "127.0.0.1:0",
      "--workspaces",
      String(options.workspaces),
    ],
    "coder stand-in listening",
  );
  const stopStandin = () => {
    standin.child.removeAllListeners("exit");
    standin.child.kill("SIGTERM");
  };
  try {
    const started = await spawnJson(
      [
        ...(options.nodeArgs ?? []),
        (await exporterEntry()).script,
        "exporter",
        "--upstream",
        String(standin.line.url),
        "--listen",
        "127.0.0.1:0",
        "--config",
        options.config,
        ...(options.exporterArgs ?? []),
      ],
      "listening",
      options.env,
    );
    return {
      url: `http://${String(started.line.address)}/metrics`,
      exporter: started.child,
      stop: () => {
        started.child.removeAllListeners("exit");
        started.child.kill("SIGTERM");
        stopStandin();
      },
    };
  } catch (err) {
    stopStandin();
    throw err;
  }
}
