import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_OLD_SPACE_MIB,
  exporterNodeOptions,
  quantityBytes,
} from "../../../controller/desired/exporter-heap.ts";

describe("exporter heap settings", () => {
  it("reads Kubernetes quantities", () => {
    const cases: [string | number | undefined, number | undefined][] = [
      ["512Mi", 512 * 2 ** 20],
      ["1Gi", 2 ** 30],
      ["1G", 1e9],
      ["500M", 5e8],
      ["1.5Gi", 1.5 * 2 ** 30],
      ["128974848", 128974848],
      [268435456, 268435456],
      ["1e9", 1e9],
      ["64k", 64e3],
      ["bogus", undefined],
      ["", undefined],
      [undefined, undefined],
    ];
    for (const [q, bytes] of cases) assert.equal(quantityBytes(q), bytes, String(q));
  });

  it("leaves 128 MiB of the memory limit (at least 1/4) to the rest; a default without one", () => {
    assert.equal(
      exporterNodeOptions(undefined),
      `--max-semi-space-size=16 --max-old-space-size=${DEFAULT_OLD_SPACE_MIB}`,
    );
    assert.equal(exporterNodeOptions("256Mi"), "--max-semi-space-size=16 --max-old-space-size=128");
    assert.equal(exporterNodeOptions("512Mi"), "--max-semi-space-size=16 --max-old-space-size=384");
    assert.equal(exporterNodeOptions("2Gi"), "--max-semi-space-size=16 --max-old-space-size=1536");
    assert.equal(exporterNodeOptions("32Mi"), "--max-semi-space-size=16 --max-old-space-size=64");
    assert.equal(
      exporterNodeOptions("lots"),
      `--max-semi-space-size=16 --max-old-space-size=${DEFAULT_OLD_SPACE_MIB}`,
    );
  });
});
