// usage: node kubelet-reaper.ts [<label>=<value>]
// Started by the process kubelet (podman.ts startReaper) in a session of its
// own, with its stdin a pipe from the kubelet's process, on which the kubelet
// writes `pid <n>` for each process it starts (the Coder stand-in, or
// coder-metrics from the sources), `gone <n>` when one ends, and `stopped` when
// it stopped everything itself. When the pipe closes — the kubelet stopped, or
// its process ended however it ended (Ctrl-C, SIGKILL, a crash) — the reaper
// kills the processes still listed and removes every container carrying the
// label, then exits.
import { execFileSync } from "node:child_process";

const label = process.argv[2];
if (label !== undefined && !label.includes("=")) {
  console.error("usage: node kubelet-reaper.ts [<label>=<value>]");
  process.exit(2);
}
// The terminal's Ctrl-C or hang-up is the kubelet's business, not ours: we end on EOF.
for (const signal of ["SIGINT", "SIGHUP", "SIGTERM"] as const) process.on(signal, () => undefined);

const pids = new Set<number>();
let orderly = false;
let pending = "";

function sweep(): void {
  let killed = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {
      // already gone
    }
  }
  pids.clear();
  let removed = 0;
  if (label !== undefined) {
    const ids = execFileSync("podman", ["ps", "--all", "--quiet", "--filter", `label=${label}`], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((id) => id !== "");
    if (ids.length > 0) {
      execFileSync("podman", ["rm", "--force", "--ignore", "--time=0", ...ids], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
    removed = ids.length;
  }
  console.log(
    `${new Date().toISOString()} kubelet-reaper ${label ?? ""}: killed ${killed} process(es), removed ${removed} container(s)`,
  );
}

function fail(err: unknown): never {
  console.error(`kubelet-reaper ${label ?? ""}: ${String(err)}`);
  process.exit(1);
}

let ended = false;
function onEnd(): void {
  if (ended) return;
  ended = true;
  try {
    sweep();
  } catch (err) {
    fail(err);
  }
  if (orderly || label === undefined) process.exit(0);
  // A `podman run` the kubelet had just started may create its container after the
  // first sweep (its client outlives a SIGKILLed kubelet): once more, a moment later.
  setTimeout(() => {
    try {
      sweep();
    } catch (err) {
      fail(err);
    }
    process.exit(0);
  }, 3000);
}

process.stdin.on("data", (chunk: Buffer) => {
  const lines = (pending + chunk.toString()).split("\n");
  pending = lines.pop() ?? "";
  for (const line of lines) {
    const [word, n] = line.split(" ");
    if (word === "pid") pids.add(Number(n));
    else if (word === "gone") pids.delete(Number(n));
    else if (word === "stopped") orderly = true;
  }
});
process.stdin.once("end", onEnd);
process.stdin.once("close", onEnd);
