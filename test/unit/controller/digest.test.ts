import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { digestOf, isSubset, isUpToDate, stampDigest } from "../../../controller/desired/digest.ts";

describe("digest", () => {
  test("ignores key order, sees values", () => {
    assert.equal(digestOf({ a: 1, b: { c: [1, 2] } }), digestOf({ b: { c: [1, 2] }, a: 1 }));
    assert.notEqual(digestOf({ a: 1 }), digestOf({ a: 2 }));
    assert.notEqual(digestOf({ c: [1, 2] }), digestOf({ c: [2, 1] }));
  });
});

describe("isSubset", () => {
  const cases: Array<[string, unknown, unknown, boolean]> = [
    ["equal scalars", 1, 1, true],
    ["different scalars", "a", "b", false],
    ["server-defaulted extra fields", { a: 1 }, { a: 1, b: 2 }, true],
    ["missing field", { a: 1, b: 2 }, { a: 1 }, false],
    [
      "named list items match by name",
      [{ name: "x", v: 1 }],
      [
        { name: "y", v: 9 },
        { name: "x", v: 1, d: 0 },
      ],
      true,
    ],
    ["named list item changed", [{ name: "x", v: 1 }], [{ name: "x", v: 2 }], false],
    ["named list item removed", [{ name: "x" }, { name: "y" }], [{ name: "x" }], false],
    ["plain lists by containment", ["ALL"], ["ALL"], true],
    ["plain list element missing", ["a", "b"], ["a"], false],
    ["undefined fields are not wanted", { a: undefined }, {}, true],
    ["object vs array", { a: 1 }, [1], false],
    [
      "quantities under resources compare by amount",
      { resources: { limits: { cpu: "0.5", memory: "1024Mi" } } },
      { resources: { limits: { cpu: "500m", memory: "1Gi" } } },
      true,
    ],
    [
      "a changed quantity is seen",
      { resources: { limits: { cpu: "0.5" } } },
      { resources: { limits: { cpu: "1" } } },
      false,
    ],
    ["quantities elsewhere are plain strings", { a: "0.5" }, { a: "500m" }, false],
    ["an empty map the server omits", { a: 1, b: {} }, { a: 1 }, true],
    ["an empty list the server omits", { a: 1, b: [] }, { a: 1 }, true],
  ];
  for (const [name, want, have, expected] of cases) {
    test(name, () => assert.equal(isSubset(want, have), expected));
  }
});

describe("isUpToDate", () => {
  const object = { metadata: { name: "s" }, spec: { ports: [{ name: "p", port: 1 }] } };
  const desired = stampDigest(object);
  test("same digest and fields present → nothing to do", () => {
    const live = {
      metadata: { name: "s", annotations: { ...desired.metadata.annotations }, uid: "u" },
      spec: { ports: [{ name: "p", port: 1, protocol: "TCP" }] },
    };
    assert.equal(isUpToDate(desired, live), true);
  });
  test("a user edited one of our fields → apply again", () => {
    const live = {
      metadata: { name: "s", annotations: { ...desired.metadata.annotations } },
      spec: { ports: [{ name: "p", port: 2 }] },
    };
    assert.equal(isUpToDate(desired, live), false);
  });
  test("the desired state changed (other digest) → apply, so server-side apply can drop what we no longer set", () => {
    const live = {
      metadata: { name: "s", annotations: { "coder-metrics.io/applied": "old" } },
      spec: { ports: [{ name: "p", port: 1 }] },
    };
    assert.equal(isUpToDate(desired, live), false);
  });
  test("absent → apply", () => assert.equal(isUpToDate(desired, undefined), false));
});
