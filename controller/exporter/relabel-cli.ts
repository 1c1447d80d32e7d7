// `coder-metrics relabel --config RULES.yaml < in.prom > out.prom`: the
// exporter's pipeline as a filter, for trying rules on a saved payload.
import { readFile } from "node:fs/promises";
import { parseExporterConfig } from "./config/config.ts";
import { type FlagSpec, parseFlags, UsageError, usage } from "../common/flags.ts";
import { parseSize } from "../common/units.ts";
import { InvalidSeriesError, ParseError } from "./model/model.ts";
import { type Escaping, escapeExposition } from "./serialize/serialize.ts";
import type { ExpositionFormat } from "./parse/parse.ts";
import { HASH_KEY_ENV } from "./serve/reload.ts";
import { Pipeline } from "./pipeline.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "config", help: "rules file (YAML), as for the exporter (required)" },
  {
    name: "format",
    help: "input format: prometheus (text 0.0.4) or openmetrics",
    default: "prometheus",
  },
  { name: "hash-key-file", help: "file holding the HMAC key for pii.hash_labels", default: "" },
  { name: "max-body-bytes", help: "largest input accepted", default: "64MiB" },
  {
    name: "escaping",
    help: "how names that are not legacy-valid are written: allow-utf-8 (quoted, as to Prometheus 3), underscores, dots or values",
    default: "allow-utf-8",
  },
];
const SUMMARY =
  "Reads Prometheus exposition text on stdin, writes on stdout the series Prometheus 3 would store with these rules.";
const ESCAPINGS: readonly Escaping[] = ["allow-utf-8", "underscores", "dots", "values"];

async function readStdin(max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    n += b.length;
    if (n > max) return undefined;
    chunks.push(b);
  }
  return Buffer.concat(chunks, n);
}

export async function runRelabel(args: string[]): Promise<number> {
  const fail = (msg: string, code = 1) => {
    process.stderr.write(`coder-metrics relabel: ${msg}\n`);
    return code;
  };
  let f: Record<string, string | undefined>;
  let max: number;
  try {
    f = parseFlags(args, FLAGS);
    if (f.help) {
      process.stdout.write(usage("relabel", SUMMARY, FLAGS));
      return 0;
    }
    if (!f.config) throw new UsageError("--config is required");
    if (f.format !== "prometheus" && f.format !== "openmetrics") {
      throw new UsageError(`--format must be prometheus or openmetrics, got "${f.format}"`);
    }
    if (!ESCAPINGS.includes(f.escaping as Escaping)) {
      throw new UsageError(
        `--escaping must be one of ${ESCAPINGS.join(", ")}, got "${f.escaping}"`,
      );
    }
    max = parseSize("max-body-bytes", f["max-body-bytes"]!);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return fail(`${err.message}\n\n${usage("relabel", SUMMARY, FLAGS)}`, 2);
  }
  let text: string;
  try {
    text = await readFile(f.config, "utf8");
  } catch (err) {
    return fail(`cannot read ${f.config}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const cfg = parseExporterConfig(text);
  if (!cfg.ok) {
    const lines = cfg.errors.map((e) => `  ${e.path === "" ? "" : `${e.path}: `}${e.message}`);
    return fail(`invalid configuration ${f.config}:\n${lines.join("\n")}`);
  }
  let key: Buffer | undefined;
  if (f["hash-key-file"]) {
    try {
      key = Buffer.from((await readFile(f["hash-key-file"], "utf8")).replace(/[\r\n]+$/, ""));
    } catch (err) {
      return fail(
        `cannot read hash key file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  } else if (process.env[HASH_KEY_ENV]) {
    key = Buffer.from(process.env[HASH_KEY_ENV]);
  }
  const pipeline = new Pipeline(cfg.config, key);
  if (pipeline.missingHashKey) {
    process.stderr.write(
      `coder-metrics relabel: warning: pii.hash_labels without a key (--hash-key-file or ${HASH_KEY_ENV}); dropping those labels\n`,
    );
  }
  const input = await readStdin(max);
  if (input === undefined) return fail(`input exceeds ${max} bytes`);
  let body: Buffer;
  try {
    const out = pipeline.transform(input, { format: f.format as ExpositionFormat });
    body = out.body;
    const escaping = f.escaping as Escaping;
    if (escaping !== "allow-utf-8" && out.utf8Names) body = escapeExposition(body, escaping);
  } catch (err) {
    if (err instanceof ParseError) return fail(`malformed input: line ${err.line}: ${err.reason}`);
    if (err instanceof InvalidSeriesError) {
      // What Prometheus does with the same rules: the whole scrape fails.
      return fail(`${err.message} (Prometheus fails the whole scrape for such a series)`);
    }
    throw err;
  }
  // A reader that stops early (`| head`) closes the pipe: not an error.
  const closedEarly = (err: unknown) => (err as NodeJS.ErrnoException).code === "EPIPE";
  process.stdout.on("error", (err) => {
    if (!closedEarly(err)) throw err;
  });
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(body, (err) => (err && !closedEarly(err) ? reject(err) : resolve())),
  );
  return 0;
}
