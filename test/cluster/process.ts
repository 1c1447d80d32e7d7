// A child process of the local control plane: output to a log file, a clear
// error with the log's tail when it dies before it is stopped.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";

export class ManagedProcess {
  readonly name: string;
  readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(name: string, logPath: string) {
    this.name = name;
    this.logPath = logPath;
  }

  start(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
    const log = openSync(this.logPath, "a");
    this.stopping = false;
    const child = spawn(command, args, { stdio: ["ignore", log, log], env });
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        if (!this.stopping) {
          process.stderr.write(
            `control plane: ${this.name} exited unexpectedly (code ${code}, signal ${signal})\n${this.logTail()}\n`,
          );
        }
        resolve();
      });
    });
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGTERM, then SIGKILL after the grace period. */
  async stop(graceMs = 10_000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running) return;
    this.stopping = true;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}
