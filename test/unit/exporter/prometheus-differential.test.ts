// The exporter against Prometheus's own Go code (promref, built from the
// Prometheus pinned in test/tools/prometheus): the checked-in case table,
// then generated cases. Any difference fails with the case and both answers.
//
// `make test` runs a short slice of generated cases; `make fuzz` runs
// DIFF_RUNS (default there 100,000) of each kind. FUZZ_SEED replays a run.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  KNOWN_DIFFERENCES,
  OPENMETRICS_CASES,
  PARSE_CASES,
  RELABEL_CASES,
} from "../../fixtures/prometheus-differential/cases.ts";
import {
  type DiffCase,
  type Difference,
  parseDifferences,
  relabelDifferences,
  report,
} from "./differential.ts";
import { diffCase, mutatedPayload, regexCase } from "./generators.ts";

const RUNS = Number(process.env.DIFF_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
/** Cases per promref process (two processes per batch). */
const BATCH = 2500;

/** Generates `total` cases in batches and collects the differences `check` finds. */
function generated<T>(
  arb: fc.Arbitrary<T>,
  total: number,
  check: (batch: T[]) => Difference[],
): Difference[] {
  const diffs: Difference[] = [];
  for (let done = 0, i = 0; done < total && diffs.length < 20; done += BATCH, i++) {
    const batch = fc.sample(arb, { numRuns: Math.min(BATCH, total - done), seed: SEED + i });
    diffs.push(...check(batch));
  }
  return diffs;
}

describe("the exporter does what Prometheus does", () => {
  it("case table: relabel actions and their edge cases", () => {
    const diffs = relabelDifferences(RELABEL_CASES);
    assert.equal(diffs.length, 0, report(diffs, 100));
  });

  it("case table: text-format edge cases through the parser", () => {
    const diffs = parseDifferences(PARSE_CASES);
    assert.equal(diffs.length, 0, report(diffs, 100));
  });

  it("case table: text-format edge cases through the pipeline", () => {
    const cases = PARSE_CASES.map((c): DiffCase => ({ ...c, rules: [] }));
    const diffs = relabelDifferences(cases);
    assert.equal(diffs.length, 0, report(diffs, 100));
  });

  it("case table: OpenMetrics input", () => {
    const diffs = relabelDifferences(OPENMETRICS_CASES);
    assert.equal(diffs.length, 0, report(diffs, 100));
  });

  it("known differences still differ (see controller/exporter/README.md)", () => {
    for (const c of KNOWN_DIFFERENCES) {
      assert.equal(relabelDifferences([c]).length, 1, `${c.name}: no longer differs (${c.why})`);
    }
  });

  it(`generated: ${RUNS} payloads with rules (seed ${SEED})`, () => {
    const diffs = generated(diffCase, RUNS, (batch) =>
      relabelDifferences(batch.map((c, i) => ({ name: `generated #${i}`, ...c }))),
    );
    assert.equal(diffs.length, 0, report(diffs));
  });

  it(`generated: ${RUNS} regexes, their syntax and matches (seed ${SEED})`, () => {
    const diffs = generated(regexCase, RUNS, (batch) =>
      relabelDifferences(batch.map((c, i) => ({ name: `regex #${i}`, ...c }))),
    );
    assert.equal(diffs.length, 0, report(diffs));
  });

  it(`generated: ${RUNS} mutated payloads through the parser and the pipeline (seed ${SEED})`, () => {
    const diffs = generated(mutatedPayload, RUNS, (batch) => {
      const cases = batch.map((payload, i) => ({ name: `mutated #${i}`, rules: [], payload }));
      return [...parseDifferences(cases), ...relabelDifferences(cases)];
    });
    assert.equal(diffs.length, 0, report(diffs));
  });
});

describe("promref is built from the Prometheus the project pins", () => {
  it("test/tools/promref/go.mod requires exactly test/tools/prometheus's versions of github.com/prometheus/*", () => {
    const root = join(import.meta.dirname, "../../..");
    const requires = (mod: string) => {
      const text = readFileSync(join(root, "test/tools", mod, "go.mod"), "utf8");
      const out = new Map<string, string>();
      for (const m of text.matchAll(
        /^\s*(?:require\s+)?(github\.com\/prometheus\/[\w.-]+)\s+(v\S+)/gm,
      )) {
        out.set(m[1]!, m[2]!);
      }
      return out;
    };
    const prometheus = requires("prometheus");
    const promref = requires("promref");
    for (const mod of ["github.com/prometheus/prometheus", "github.com/prometheus/common"]) {
      assert.ok(promref.has(mod), `test/tools/promref/go.mod does not require ${mod}`);
    }
    for (const [mod, version] of promref) {
      assert.equal(version, prometheus.get(mod), `${mod} in test/tools/promref/go.mod`);
    }
  });
});
