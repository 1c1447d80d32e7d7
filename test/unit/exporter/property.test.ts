// Property tests (fast-check): round trips and robustness of the parser.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  type Family,
  type MetricType,
  ParseError,
  Sample,
} from "../../../controller/exporter/model.ts";
import { parse } from "../../../controller/exporter/parse.ts";
import { serialize } from "../../../controller/exporter/serialize.ts";
import { plain } from "./helpers.ts";

const metricName = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,20}$/);
const labelName = fc
  .stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,12}$/)
  .filter((n) => n !== "__name__" && n !== "le" && n !== "quantile");
const text = fc.string({ unit: "grapheme", maxLength: 20 });
const value = fc.oneof(
  fc.double(),
  fc.integer({ min: -1e9, max: 1e9 }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0),
);
const timestamp = fc.option(fc.integer({ min: 0, max: 2 ** 50 }), { nil: undefined });

const labels = fc
  .uniqueArray(fc.tuple(labelName, text), { selector: ([n]) => n, maxLength: 4 })
  .map((pairs) => pairs.flat());

const family = fc.record({
  type: fc.constantFrom<MetricType>("counter", "gauge", "untyped"),
  help: fc.option(
    text.filter((h) => h.trim() !== "" || h === ""),
    { nil: undefined },
  ),
  typed: fc.boolean(),
  samples: fc.array(fc.record({ labels, value, timestamp }), { minLength: 1, maxLength: 5 }),
});

const families = fc
  .uniqueArray(fc.tuple(metricName, family), { selector: ([n]) => n, minLength: 0, maxLength: 6 })
  .map((list) =>
    list.map(
      ([name, f]): Family => ({
        name,
        type: f.typed ? f.type : "untyped",
        typed: f.typed,
        help: f.help === "" ? undefined : f.help,
        samples: f.samples.map((s) => new Sample(name, s.labels, s.value, s.timestamp)),
      }),
    ),
  );

describe("properties", () => {
  it("parse ∘ serialize is the identity on generated payloads", () => {
    fc.assert(
      fc.property(families, (fams) => {
        const text1 = serialize(fams);
        const parsed = parse(text1);
        assert.deepStrictEqual(plain(parsed), plain(fams));
        assert.equal(serialize(parsed), text1);
      }),
      { numRuns: 300 },
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
      { numRuns: 1000 },
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
      { numRuns: 1000 },
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
      { numRuns: 2000 },
    );
  });
});
