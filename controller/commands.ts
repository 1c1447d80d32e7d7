// The CLI's subcommands. Each module loads lazily so `relabel` does not pay
// for the Kubernetes client and the controller does not load the exporter.
export interface Command {
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

export const commands: Record<string, Command> = {
  version: {
    summary: "print the version",
    async run() {
      const { version } = await import("./version.ts");
      console.log(version);
      return 0;
    },
  },
};
