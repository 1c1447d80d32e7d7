// The CLI's subcommands. Each module loads lazily so `relabel` does not pay
// for the Kubernetes client and the controller does not load the exporter.
export interface Command {
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

export const commands: Record<string, Command> = {
  controller: {
    summary: "run the Kubernetes controller that wires Coder deployments to Prometheus",
    async run(args) {
      const { runController } = await import("./operator/main.ts");
      return runController(args);
    },
  },
  exporter: {
    summary: "run the relabeling sidecar exporter in front of coderd's metrics",
    async run(args) {
      const { runExporter } = await import("./exporter/main.ts");
      return runExporter(args);
    },
  },
  doctor: {
    summary: "check, step by step, why Prometheus does or does not scrape Coder",
    async run(args) {
      const { runDoctor } = await import("./doctor/main.ts");
      return runDoctor(args);
    },
  },
  relabel: {
    summary: "apply exporter rules to exposition text (stdin → stdout)",
    async run(args) {
      const { runRelabel } = await import("./exporter/relabel-cli.ts");
      return runRelabel(args);
    },
  },
  "scrape-config": {
    summary: "print a Prometheus scrape_configs job for a CoderMetrics (no Operator needed)",
    async run(args) {
      const { runScrapeConfig } = await import("./scrape-config/main.ts");
      return runScrapeConfig(args);
    },
  },
  version: {
    summary: "print the version",
    async run() {
      const { version } = await import("./common/version.ts");
      console.log(version);
      return 0;
    },
  },
};
