// Loads the configuration file and keeps it current without a restart.
// Kubernetes mounts a ConfigMap as a `..data` symlink that is swapped
// atomically, so the directory is watched (not the file) and the file is also
// re-read periodically in case an event is missed. A changed valid file
// replaces the pipeline; an invalid one keeps the last good pipeline and is
// reported in the self-metrics and one log line per change. A missing file
// means the identity configuration. The new pipeline takes over the running
// totals of aggregated counters that the old one kept for the same rules (see
// Pipeline.adoptCounterState).
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { identityConfig, parseExporterConfig } from "../config/config.ts";
import type { Logger } from "../../common/log.ts";
import type { SelfMetrics } from "../self-metrics.ts";
import { Pipeline } from "../pipeline.ts";

export interface ReloaderOptions {
  configPath: string;
  hashKeyFile: string | undefined;
  /** Periodic re-check, milliseconds. */
  intervalMs: number;
  log: Logger;
  metrics: SelfMetrics;
  env?: NodeJS.ProcessEnv;
}

export const HASH_KEY_ENV = "CODER_METRICS_EXPORTER_HASH_KEY";

export class ConfigReloader {
  readonly #o: ReloaderOptions;
  #pipeline: Pipeline | undefined;
  /** Fingerprint (config text + key) of the last file seen, valid or not. */
  #seen: string | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #again = false;

  constructor(options: ReloaderOptions) {
    this.#o = options;
  }

  /** The last good pipeline (undefined until a valid configuration was loaded). */
  get pipeline(): Pipeline | undefined {
    return this.#pipeline;
  }

  /** Loads once, then watches. */
  async start(): Promise<void> {
    await this.check();
    try {
      this.#watcher = watch(dirname(this.#o.configPath), { persistent: false }, () => this.#soon());
      this.#watcher.on("error", () => undefined);
    } catch {
      // The directory may not exist (no ConfigMap mounted); the timer still checks.
    }
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  close(): void {
    this.#watcher?.close();
    clearInterval(this.#timer);
    clearTimeout(this.#debounce);
  }

  #soon(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.check(), 100);
    this.#debounce.unref();
  }

  /** Re-reads the file (serialised: a check during a check runs once more after it). */
  check(): Promise<void> {
    if (this.#checking !== undefined) {
      this.#again = true;
      return this.#checking;
    }
    this.#checking = (async () => {
      do {
        this.#again = false;
        await this.#load();
      } while (this.#again);
    })().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  async #load(): Promise<void> {
    const { log, metrics, configPath } = this.#o;
    let text: string | undefined;
    try {
      text = await readFile(configPath, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        this.#fail(`cannot read configuration: ${(err as Error).message}`, `read:${String(err)}`);
        return;
      }
    }
    const key = await this.#hashKey();
    if (key === null) return;
    const fingerprint = `${text ?? "\0missing"}\0${key?.toString("base64") ?? ""}`;
    if (fingerprint === this.#seen) return;
    this.#seen = fingerprint;

    let config = identityConfig();
    if (text === undefined) {
      log.info("configuration file not found; serving upstream metrics unchanged", {
        config: configPath,
      });
    } else {
      const r = parseExporterConfig(text);
      if (!r.ok) {
        this.#fail("invalid configuration; keeping the last good one", "", r.errors);
        return;
      }
      config = r.config;
    }
    const pipeline = new Pipeline(config, key);
    // Aggregated counters carry on where the rules and relabeling are unchanged.
    if (this.#pipeline !== undefined) pipeline.adoptCounterState(this.#pipeline);
    this.#pipeline = pipeline;
    metrics.configReloadOk.set(1);
    metrics.configReloadTime.set(Date.now() / 1000);
    metrics.configReloads.inc({ result: "success" });
    metrics.hashKeyMissing.set(pipeline.missingHashKey ? 1 : 0);
    log.info("configuration loaded", {
      config: configPath,
      relabel_rules: config.relabel.length,
      drop_metrics: config.dropMetrics.patterns.length,
      aggregate_rules: config.aggregate.length,
      presets: config.presets,
      series_limit: config.seriesLimit,
    });
    if (pipeline.missingHashKey) {
      log.warn("pii.hash_labels configured without a hash key; those labels are dropped", {
        hint: `set --hash-key-file or ${HASH_KEY_ENV}`,
      });
    }
  }

  #fail(msg: string, fingerprint: string, errors?: { path: string; message: string }[]): void {
    const { log, metrics, configPath } = this.#o;
    if (fingerprint !== "") {
      if (fingerprint === this.#seen) return;
      this.#seen = fingerprint;
    }
    metrics.configReloadOk.set(0);
    metrics.configReloads.inc({ result: "failure" });
    log.error(msg, {
      config: configPath,
      errors: errors?.map((e) => `${e.path === "" ? "" : `${e.path}: `}${e.message}`),
      serving: this.#pipeline === undefined ? "self-metrics only" : "last good configuration",
    });
  }

  /** The HMAC key: file, else environment; null when the file cannot be read. */
  async #hashKey(): Promise<Buffer | undefined | null> {
    const file = this.#o.hashKeyFile;
    if (file !== undefined && file !== "") {
      try {
        const raw = await readFile(file);
        // Trailing newlines from `echo` or editors are not part of the key.
        let end = raw.length;
        while (end > 0 && (raw[end - 1] === 10 || raw[end - 1] === 13)) end--;
        return raw.subarray(0, end);
      } catch (err) {
        this.#fail(
          `cannot read hash key file: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
          `key:${String(err)}`,
        );
        return null;
      }
    }
    const env = (this.#o.env ?? process.env)[HASH_KEY_ENV];
    return env !== undefined && env !== "" ? Buffer.from(env, "utf8") : undefined;
  }
}
