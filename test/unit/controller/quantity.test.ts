import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { quantityNanos, sameQuantity } from "../../../controller/desired/quantity.ts";

describe("resource quantities", () => {
  // What the API server stores for what was written (apimachinery's canonical form).
  const canonical: Array<[string | number, string]> = [
    ["0.5", "500m"],
    [0.5, "500m"],
    ["1000m", "1"],
    [1, "1"],
    ["1024Mi", "1Gi"],
    ["0.5Gi", "512Mi"],
    ["1e3", "1k"],
    ["1000000000", "1G"],
    ["1.5", "1500m"],
    ["0.1m", "100u"],
    ["100n", "100n"],
    ["+2", "2"],
  ];
  for (const [written, stored] of canonical) {
    test(`${JSON.stringify(written)} is ${stored}`, () => assert.ok(sameQuantity(written, stored)));
  }

  test("different amounts differ; binary and decimal suffixes are not confused", () => {
    assert.equal(sameQuantity("1Gi", "1G"), false);
    assert.equal(sameQuantity("500m", "501m"), false);
    assert.equal(sameQuantity("1k", "1Ki"), false);
  });

  test("finer than a nano-unit rounds up to one, as the API server does", () => {
    assert.equal(quantityNanos("0.1n"), 1n);
    assert.equal(quantityNanos("1.0000000001"), 1_000_000_001n);
  });

  test("not a quantity", () => {
    for (const v of ["", "abc", "1.2.3", "1Gb", "1e", "e3", "1e1000", "--1", null, true, {}]) {
      assert.equal(quantityNanos(v), undefined, JSON.stringify(v));
    }
    assert.equal(sameQuantity("abc", "abc"), false, "equal strings are for the caller to compare");
  });
});
