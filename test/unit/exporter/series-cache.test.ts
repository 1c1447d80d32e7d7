// The series cache's one promise: what a pipeline serves does not depend on
// what it scraped before. Each case feeds a sequence of scrapes to a pipeline
// with the cache and to its twin without one (a zero budget), and wants the
// same bytes and the same stats from both every time — while the stats show
// the cache did answer lines (seriesCached), so the cases test the cached
// path and not only the slow one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import { Pipeline, type TransformResult } from "../../../controller/exporter/pipeline.ts";
import { BENCH_CONFIG, BENCH_RULES } from "../../bench/bench-config.ts";
import { generateFixture, rng } from "../../support/coder-fixture.ts";

type Outcome = { ok: true; out: TransformResult } | { ok: false; error: string };

function scrape(p: Pipeline, payload: string | Buffer, chunk: number): Outcome {
  const bytes = typeof payload === "string" ? Buffer.from(payload) : payload;
  const s = p.stream();
  try {
    for (let at = 0; at < bytes.length; at += chunk) s.write(bytes.subarray(at, at + chunk));
    return { ok: true, out: s.end() };
  } catch (err) {
    s.abort();
    return { ok: false, error: String(err) };
  }
}

/** Stats without the cache's own figures (the twin has no cache). */
function comparable(o: Outcome) {
  if (!o.ok) return o;
  const { seriesCached: _, cacheSeries: __, cacheBytes: ___, ...stats } = o.out.stats;
  return { body: o.out.body.toString(), utf8: o.out.utf8Names, stats };
}

/**
 * Runs the scrapes through a cached pipeline and its uncached twin; asserts
 * they agree every time. Returns the cached pipeline's lines answered from
 * the cache, per scrape.
 */
function agree(
  config: string,
  scrapes: readonly (string | Buffer)[],
  chunks: readonly number[] = [1 << 16],
  options: { seriesCacheBytes?: number } = {},
): number[] {
  const c = parseExporterConfig(config);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  const key = Buffer.from("k");
  const cached = new Pipeline(c.config, key, options);
  const twin = new Pipeline(c.config, key, { seriesCacheBytes: 0 });
  const hits: number[] = [];
  scrapes.forEach((payload, i) => {
    const chunk = chunks[i % chunks.length]!;
    const a = scrape(cached, payload, chunk);
    const b = scrape(twin, payload, 1 << 30);
    assert.deepEqual(comparable(a), comparable(b), `scrape ${i} (chunks of ${chunk})`);
    if (b.ok) assert.equal(b.out.stats.seriesCached, 0, "the twin has no cache");
    hits.push(a.ok ? a.out.stats.seriesCached : 0);
    // As the server does once it has copied the body out: the next scrape
    // writes into the same memory (the twin's gets fresh memory).
    if (a.ok) a.out.release();
  });
  return hits;
}

const RULES = `metric_relabel_configs:${BENCH_RULES}`;

const HIST = `# HELP req_seconds Request latency.
# TYPE req_seconds histogram
req_seconds_bucket{path="/a",le="0.1"} 1
req_seconds_bucket{path="/a",le="1"} 2
req_seconds_bucket{path="/a",le="+Inf"} 3
req_seconds_sum{path="/a"} 0.25
req_seconds_count{path="/a"} 3
# HELP up_total Things.
# TYPE up_total counter
up_total{workspace_owner="alice",status="OK"} 5
up_total{workspace_owner="bob",status="Failed"} 7
`;

describe("series cache: a warmed pipeline serves what a fresh one does", () => {
  it("the same payload again is answered from the cache, line for line", () => {
    const hits = agree(RULES, [HIST, HIST, HIST]);
    assert.equal(hits[0], 0);
    assert.equal(hits[1], 7);
    assert.equal(hits[2], 7);
  });

  it("new values of every valid form, and values the cache does not take (parsed instead)", () => {
    const values = [
      "0",
      "17",
      "-3.5",
      "1e+06",
      "2.5E-3",
      "NaN",
      "+Inf",
      "-Inf",
      ".5",
      "5.",
      "00012",
    ];
    const odd = ["0x1p-2", "Infinity", "nan", "1_000", "+NaN", "1e400", "1e-400"];
    const scrapes = [...values, ...odd].map((v) => HIST.replace(" 5\n", ` ${v}\n`));
    const hits = agree(RULES, [HIST, ...scrapes]);
    for (let i = 1; i <= values.length; i++) assert.equal(hits[i], 7, `value ${values[i - 1]}`);
  });

  it("a bad value on a known series fails the scrape as it would uncached (same line)", () => {
    agree(RULES, [HIST, HIST.replace(" 7\n", " 7x\n"), HIST.replace(" 7\n", " \u00ff\n"), HIST]);
  });

  it("other blanks, a timestamp, or a trailing comma make a line new; a timestamp turns the cache off for the rest", () => {
    agree(RULES, [
      HIST,
      HIST.replace('status="OK"} 5', 'status="OK"}  5'),
      HIST.replace('status="OK"} 5', 'status="OK"}\t5'),
      HIST.replace('status="OK"} 5', 'status="OK"} 5 1700000000000'),
      HIST.replace('le="1"} 2', 'le="1"} 2 1700000000000'),
      HIST.replace('path="/a"} 0.25', 'path="/a",} 0.25'),
      HIST,
    ]);
  });

  it("a label value holding a raw newline is not split into known lines", () => {
    // The second line of `hidden` is a known line — inside the first one's label value.
    const known = '# TYPE bar gauge\nbar{b="0"} 1\nbar{b="1"} 2\n';
    const hidden = '# TYPE bar gauge\nbar{b="0",a="x\nbar{b="1"} 2\n"} 3\nbar{b="1"} 4\n';
    const hits = agree("{}", [known, hidden, known, hidden], [1 << 16, 1 << 16, 1 << 16, 3]);
    assert.equal(hits[2], 2, "known again after it");
  });

  it("a HELP or TYPE that changes makes its family's lines new (they are read in another context)", () => {
    const scrapes = [
      HIST,
      HIST.replace("Things.", "Things, counted."),
      HIST.replace("# TYPE up_total counter", "# TYPE up_total gauge"),
      HIST.replace("# HELP up_total Things.\n", ""),
      HIST.replace("# HELP up_total Things.\n# TYPE up_total counter\n", ""),
      HIST,
    ];
    const hits = agree(RULES, scrapes);
    assert.equal(hits[1], 5, "only req_seconds is known in scrape 1");
    // up_total's entries were replaced by those of its later contexts.
    assert.equal(hits[5], 5);
  });

  it("after a HELP changes for good (coderd upgraded), its family is answered from the cache again", () => {
    const upgraded = HIST.replace("Things.", "Things, counted.");
    const hits = agree(RULES, [HIST, HIST, upgraded, upgraded, upgraded]);
    assert.deepEqual(hits, [0, 7, 5, 7, 7]);
  });

  it("series come, go, repeat and change order", () => {
    const lines = HIST.split("\n").filter((l) => l !== "");
    const swapped = [...lines.slice(0, 7), lines[8], lines[7]].join("\n");
    const dup = `${HIST}up_total{workspace_owner="alice",status="OK"} 6\n`;
    agree(RULES, [HIST, `${swapped}\n`, dup, HIST.replace(/.*bob.*\n/, ""), HIST, dup]);
  });

  it("the same series text in another family is another series (the family decides what it means)", () => {
    const a = "# TYPE m counter\nm 1\n# TYPE m_sum gauge\nm_sum 2\n";
    const b = "# TYPE m summary\nm 1\nm_sum 2\n";
    agree("{}", [a, b, a, b]);
  });

  it("renames into another family and into the family's own name (lines are then held to the end)", () => {
    const config = `metric_relabel_configs:
  - {source_labels: [__name__], regex: "req_seconds_bucket", target_label: __name__, replacement: req_seconds}
  - {source_labels: [__name__], regex: "up_total", target_label: __name__, replacement: moved_total}
`;
    const hits = agree(config, [
      HIST,
      HIST,
      `${HIST}# TYPE moved_total counter\nmoved_total 1\n`,
      HIST,
    ]);
    assert.ok(hits[1]! > 0);
  });

  it("a rule that sets an le Prometheus would read back otherwise makes the histogram untyped", () => {
    const config = `metric_relabel_configs:
  - {source_labels: [le], regex: "1", target_label: le, replacement: "1.00"}
`;
    agree(config, [HIST, HIST, HIST]);
  });

  it("series_limit: a histogram is kept whole or not at all, counters are cut", () => {
    for (const limit of [1, 3, 5, 6, 8])
      agree(`series_limit: ${limit}\n${RULES}`, [HIST, HIST, HIST]);
  });

  it("duplicates made by the rules, across families and within one", () => {
    const config = `metric_relabel_configs:
  - {regex: workspace_owner|status, action: labeldrop}
`;
    agree(config, [HIST, HIST, HIST]);
  });

  it("drop_metrics, keep/drop rules and aggregation", () => {
    agree(`drop_metrics: [req_seconds]\n${RULES}`, [HIST, HIST]);
    agree(BENCH_CONFIG, [HIST, HIST, HIST]);
  });

  it("UTF-8 names, escapes and empty label values", () => {
    const text = `# TYPE "a.b" counter
{"a.b",x="1"} 1
{"a.b",x="q\\"uote\\\\d",y=""} 2
m{"c:d"="ü",e=""} 3
`;
    agree(RULES, [text, text, text], [1 << 16, 7, 1]);
  });

  it("OpenMetrics scrapes are parsed whole (never cached)", () => {
    const c = parseExporterConfig(RULES);
    assert.ok(c.ok);
    const p = new Pipeline(c.config);
    const om = "# TYPE x counter\nx_total 1\n# EOF\n";
    for (let i = 0; i < 2; i++) {
      const s = p.stream({ format: "openmetrics" });
      s.write(Buffer.from(om));
      assert.equal(s.end().stats.seriesCached, 0);
    }
  });

  it("Coder payloads with changing values, workspaces and chunk sizes", () => {
    const rand = rng(7);
    const scrapes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const base = generateFixture({ workspaces: 30 + (i % 3) * 5, seed: 1 + (i % 2) });
      // New values on a third of the lines, as counters move between scrapes.
      scrapes.push(
        base.replace(/ (\d+)\n/g, (m, v: string) => (rand() < 0.33 ? ` ${Number(v) + 1}\n` : m)),
      );
    }
    for (const config of [RULES, BENCH_CONFIG, "{}"]) {
      const hits = agree(config, scrapes, [1 << 16, 1000, 17, 1 << 20]);
      assert.ok(
        hits.slice(1).some((h) => h > 0),
        `${config}: some lines answered from the cache`,
      );
    }
  });

  it("stays within its byte budget, and sheds series that are gone", () => {
    const c = parseExporterConfig(RULES);
    assert.ok(c.ok);
    const small = new Pipeline(c.config, undefined, { seriesCacheBytes: 2 << 20 });
    let last: TransformResult | undefined;
    for (let i = 0; i < 8; i++) {
      // Every scrape a new set of workspaces: what the cache learnt is gone.
      const r = scrape(small, generateFixture({ workspaces: 400, seed: 10 + i }), 1 << 16);
      assert.ok(r.ok);
      last = r.out;
      assert.ok(last.stats.cacheBytes <= 2 << 20, `bytes ${last.stats.cacheBytes}`);
    }
    assert.ok(
      last!.stats.cacheSeries < last!.stats.seriesIn * 2,
      `series ${last!.stats.cacheSeries}`,
    );
    // A budget too small for the payload still serves it all.
    agree(
      RULES,
      [generateFixture({ workspaces: 200 }), generateFixture({ workspaces: 200 })],
      [1 << 16],
      {
        seriesCacheBytes: 1 << 20,
      },
    );
  });
});
