// Property tests (fast-check): round trips and robustness of the parser, the
// stream parser against the whole-payload one, and compiled relabel templates
// against rule-by-rule relabeling.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type Family,
  InvalidSeriesError,
  type MetricType,
  ParseError,
  Sample,
} from "../../../controller/exporter/model/model.ts";
import {
  ExpositionStream,
  parse,
  type ParseOptions,
} from "../../../controller/exporter/parse/parse.ts";
import { serialize } from "../../../controller/exporter/serialize/serialize.ts";
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import { Pipeline } from "../../../controller/exporter/pipeline.ts";
import { families, rule } from "./generators.ts";
import { plain } from "./helpers.ts";

// `make test` runs a short slice; `make fuzz` sets FUZZ_RUNS to run each
// property that many times (8 × 250,000 = 2M generated cases).
const runs = (n: number) => Number(process.env.FUZZ_RUNS ?? n);

/** Parses `input` fed to an ExpositionStream in pieces cut at `cuts` (fractions of its length). */
function parseStreamed(
  input: string | Uint8Array,
  cuts: number[],
  options: ParseOptions = {},
): Family[] {
  const out: Family[] = [];
  let cur: Family | undefined;
  const stream = new ExpositionStream(options, {
    begin: (head) => {
      cur = head;
    },
    sample: (smp) => {
      cur!.samples.push(smp);
      return true;
    },
    end: () => out.push(cur!),
  });
  const at = [...new Set(cuts.map((c) => Math.floor(c * input.length)))].sort((a, b) => a - b);
  let prev = 0;
  for (const cut of [...at, input.length]) {
    if (typeof input === "string") stream.write(input.slice(prev, cut));
    else stream.writeBytes(input.subarray(prev, cut));
    prev = cut;
  }
  stream.end();
  return out;
}

/** The outcome of a parse, for comparing two parsers: families, or the error's line and reason. */
function outcome(fn: () => Family[]): unknown {
  try {
    return plain(fn());
  } catch (err) {
    assert.ok(err instanceof ParseError, `threw ${String(err)}`);
    return { line: err.line, reason: err.reason };
  }
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });

describe("properties", () => {
  it("parse ∘ serialize is the identity on generated payloads", () => {
    fc.assert(
      fc.property(families, (fams) => {
        const text1 = serialize(fams);
        const parsed = parse(text1);
        assert.deepStrictEqual(plain(parsed), plain(fams));
        assert.equal(serialize(parsed), text1);
      }),
      { numRuns: runs(300) },
    );
  });

  it("the parser throws nothing but ParseError on random strings", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (s) => {
        try {
          parse(s);
        } catch (err) {
          assert.ok(err instanceof ParseError, `threw ${String(err)}`);
          assert.ok(err.line >= 1);
        }
      }),
      { numRuns: runs(1000) },
    );
  });

  it("the parser throws nothing but ParseError on random bytes, in both formats", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (b, om) => {
        try {
          parse(b, { format: om ? "openmetrics" : "prometheus" });
        } catch (err) {
          assert.ok(err instanceof ParseError, `threw ${String(err)}`);
        }
      }),
      { numRuns: runs(1000) },
    );
  });

  it("the parser throws nothing but ParseError on mutated valid payloads", () => {
    const valid =
      '# HELP a A.\n# TYPE a histogram\na_bucket{le="1",x="y\\"z"} 1\na_bucket{le="+Inf"} 2 1700\na_sum 3\na_count 2\nb{c="d"} NaN\n';
    const chars = fc.constantFrom(
      "{",
      "}",
      '"',
      "\\",
      "=",
      ",",
      " ",
      "\n",
      "#",
      "\0",
      "a",
      "1",
      "e",
      "+",
      "\t",
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length), chars, fc.boolean()), { maxLength: 5 }),
        (edits) => {
          let s = valid;
          for (const [at, ch, insert] of edits) {
            const i = at % (s.length + 1);
            s = s.slice(0, i) + ch + s.slice(insert ? i : i + 1);
          }
          try {
            const fams = parse(s);
            // Whatever parses must serialize to something that parses the same.
            assert.deepStrictEqual(plain(parse(serialize(fams))), plain(fams));
          } catch (err) {
            assert.ok(err instanceof ParseError, `threw ${String(err)}`);
          }
        },
      ),
      { numRuns: runs(2000) },
    );
  });

  it("the pipeline throws nothing but InvalidSeriesError on any config the validator accepts", () => {
    const payload = Buffer.from(
      '# TYPE coderd_agents_up gauge\ncoderd_agents_up{template_name="t",username="u",workspace_name="w"} 1\n' +
        '# TYPE h histogram\nh_bucket{le="1",a="x"} 1\nh_bucket{le="+Inf",a="x"} 2\nh_sum{a="x"} 3\nh_count{a="x"} 2\n',
    );
    const config = fc.record({
      metric_relabel_configs: fc.array(rule, { maxLength: 4 }),
      aggregate: fc.array(
        fc.record({
          metrics: fc.constant(["*"]),
          op: fc.constantFrom("sum", "max", "min", "count"),
          by: fc.constant(["a"]),
        }),
        { maxLength: 1 },
      ),
      series_limit: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(config, (c) => {
        const parsed = parseExporterConfig(JSON.stringify(c));
        if (!parsed.ok) {
          assert.ok(parsed.errors.length > 0 && parsed.errors.every((e) => e.path && e.message));
          return;
        }
        let out: { body: Buffer };
        try {
          out = new Pipeline(parsed.config).transform(payload);
        } catch (err) {
          // A rule that leaves a series without a name fails the scrape, as in Prometheus.
          assert.ok(err instanceof InvalidSeriesError, `threw ${String(err)}`);
          return;
        }
        parse(out.body.toString()); // whatever is served parses again
      }),
      { numRuns: runs(300) },
    );
  });

  it("parsing a stream cut anywhere gives what parsing it whole gives, errors included", () => {
    // Valid payloads, with the oddities a cut could trip over: a raw newline
    // or an escape inside a label value, multi-byte characters, comments.
    const odd = fc.constantFrom(
      "",
      '# HELP x Some "help" \\ here\n# TYPE x gauge\nx{a="multi\nline",b="é☃"} 1\n',
      'y{a="q\\"\\\\\\n"} 2 1700000000000\n# plain comment\n\n',
      'z{a="no end\n',
    );
    fc.assert(
      fc.property(families, odd, cuts, fc.boolean(), (fams, extra, at, bytes) => {
        const text = serialize(fams) + extra;
        const input = bytes ? Buffer.from(text) : text;
        assert.deepStrictEqual(
          outcome(() => parseStreamed(input, at)),
          outcome(() => parse(text)),
        );
      }),
      { numRuns: runs(500) },
    );
  });

  it("a stream of mutated payloads fails (or not) exactly as the whole payload does", () => {
    const valid =
      '# HELP a A.\n# TYPE a histogram\na_bucket{le="1",x="y\\"z"} 1\na_bucket{le="+Inf"} 2 1700\na_sum 3\na_count 2\nb{c="d\ne"} NaN\n# EOF\n';
    const chars = fc.constantFrom("{", "}", '"', "\\", "=", ",", " ", "\n", "#", "\0", "a", "1");
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length), chars, fc.boolean()), { maxLength: 5 }),
        cuts,
        fc.boolean(),
        (edits, at, om) => {
          let text = valid;
          for (const [i0, ch, insert] of edits) {
            const i = i0 % (text.length + 1);
            text = text.slice(0, i) + ch + text.slice(insert ? i : i + 1);
          }
          const options: ParseOptions = { format: om ? "openmetrics" : "prometheus" };
          assert.deepStrictEqual(
            outcome(() => parseStreamed(text, at, options)),
            outcome(() => parse(text, options)),
          );
        },
      ),
      { numRuns: runs(2000) },
    );
  });

  it("relabel templates give byte for byte what rule-by-rule relabeling gives", () => {
    // Few names and values, so layouts and value combinations repeat and the
    // template memo is exercised, including histograms and renames into
    // existing families.
    const lname = fc.constantFrom("a", "b", "template_name", "username", "le", "status");
    const lvalue = fc.constantFrom(
      "x",
      "y",
      "",
      "Main",
      "1",
      "+Inf",
      'q"\\',
      "\u0000\ufdd0coder-metrics-input:0",
    );
    const series = fc.uniqueArray(
      fc.uniqueArray(fc.tuple(lname, lvalue), { selector: ([n]) => n, maxLength: 4 }),
      { selector: (pairs) => JSON.stringify([...pairs].sort()), minLength: 1, maxLength: 8 },
    );
    const fam = fc.record({
      name: fc.constantFrom("m", "h", "coder_x", "n"),
      type: fc.constantFrom<MetricType>("counter", "gauge", "untyped", "histogram"),
      series,
      values: fc.array(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.double({ noNaN: true })), {
        minLength: 8,
        maxLength: 8,
      }),
    });
    const payload = fc.uniqueArray(fam, { selector: (f) => f.name, maxLength: 4 }).map((fams) =>
      serialize(
        fams.map((f) => {
          const names = f.type === "histogram" ? [`${f.name}_bucket`, `${f.name}_sum`] : [f.name];
          return {
            name: f.name,
            type: f.type,
            typed: true,
            help: undefined,
            samples: f.series.flatMap((pairs, i) =>
              names.map(
                (n) =>
                  new Sample(
                    n,
                    n.endsWith("_bucket")
                      ? [...pairs.flat().filter((_, j, a) => a[j - (j % 2)] !== "le"), "le", "1"]
                      : pairs.flat(),
                    f.values[i]!,
                  ),
              ),
            ),
          };
        }),
      ),
    );
    const config = fc.record({
      metric_relabel_configs: fc.array(rule, { maxLength: 5 }),
      aggregate: fc.array(
        fc.record({
          metrics: fc.constantFrom(["*"], ["m"], ["h", "coder_*"]),
          op: fc.constantFrom("sum", "max", "min", "count"),
          without: fc.constantFrom(["username"], ["a", "b"], []),
        }),
        { maxLength: 1 },
      ),
      pii: fc.constantFrom({}, { hash_labels: ["username"] }, { drop_labels: ["b"] }),
    });
    fc.assert(
      fc.property(config, payload, (c, text) => {
        const parsed = parseExporterConfig(JSON.stringify(c));
        if (!parsed.ok) return;
        const key = Buffer.from("k");
        const templated = new Pipeline(parsed.config, key);
        const ruleByRule = new Pipeline(parsed.config, key, { templates: false });
        // Twice: the second run starts with the memo the first one filled.
        const run = (p: Pipeline) => {
          try {
            const out = p.transform(Buffer.from(text));
            return { body: out.body.toString(), stats: out.stats };
          } catch (err) {
            assert.ok(err instanceof InvalidSeriesError, `threw ${String(err)}`);
            return { error: err.message };
          }
        };
        for (let i = 0; i < 2; i++) {
          assert.deepStrictEqual(run(templated), run(ruleByRule));
        }
      }),
      { numRuns: runs(500) },
    );
  });
});
