import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  escapeHelp,
  escapeLabelValue,
  formatGoFloat,
} from "../../../controller/exporter/serialize/serialize.ts";

describe("formatGoFloat (strconv.FormatFloat(v, 'g', -1, 64))", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [-2.5, "-2.5"],
    [123456, "123456"],
    [1e6, "1e+06"],
    [1234567, "1.234567e+06"],
    [2500100, "2.5001e+06"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [1.5e-7, "1.5e-07"],
    [1e21, "1e+21"],
    [1e100, "1e+100"],
    [0.1 + 0.2, "0.30000000000000004"],
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "+Inf"],
    [Number.NEGATIVE_INFINITY, "-Inf"],
  ];
  for (const [v, want] of cases) it(`${v} → ${want}`, () => assert.equal(formatGoFloat(v), want));
});

describe("escaping", () => {
  it("label values: backslash, quote, newline", () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  });
  it("help: backslash and newline only", () => {
    assert.equal(escapeHelp('a\\b"c\nd'), 'a\\\\b"c\\nd');
  });
});
