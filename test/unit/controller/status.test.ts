import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  mergeConditions,
  readyCondition,
  statusEqual,
} from "../../../controller/operator/status.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T00:05:00Z");

describe("conditions", () => {
  test("lastTransitionTime moves only when status flips", () => {
    const first = mergeConditions(
      undefined,
      [{ type: "ServiceReady", status: "True", reason: "Applied", message: "ok" }],
      1,
      t0,
    );
    assert.equal(first[0]?.lastTransitionTime, "2026-01-01T00:00:00Z");
    const same = mergeConditions(
      first,
      [{ type: "ServiceReady", status: "True", reason: "Applied", message: "still ok" }],
      2,
      t1,
    );
    assert.equal(same[0]?.lastTransitionTime, "2026-01-01T00:00:00Z");
    assert.equal(same[0]?.observedGeneration, 2);
    const flipped = mergeConditions(
      same,
      [{ type: "ServiceReady", status: "False", reason: "ApplyFailed", message: "no" }],
      2,
      t1,
    );
    assert.equal(flipped[0]?.lastTransitionTime, "2026-01-01T00:05:00Z");
  });

  test("Ready takes the first required part that is not True", () => {
    const parts = [
      { type: "CoderConfigured", status: "True", reason: "Applied", message: "" },
      {
        type: "ServiceMonitorReady",
        status: "False",
        reason: "MonitoringCRDNotInstalled",
        message: "no CRD",
      },
      { type: "ServiceReady", status: "False", reason: "ServiceNameTaken", message: "taken" },
    ] as const;
    assert.deepEqual(readyCondition([...parts], ["CoderConfigured", "ServiceReady"]), {
      type: "Ready",
      status: "False",
      reason: "ServiceNameTaken",
      message: "ServiceReady: taken",
    });
    assert.equal(readyCondition([parts[0]], ["CoderConfigured"]).status, "True");
  });

  test("status equality ignores transition times and key order", () => {
    const a = {
      observedGeneration: 1,
      conditions: mergeConditions(
        undefined,
        [{ type: "Ready", status: "True", reason: "R", message: "m" }],
        1,
        t0,
      ),
    };
    const b = {
      conditions: mergeConditions(
        undefined,
        [{ type: "Ready", status: "True", reason: "R", message: "m" }],
        1,
        t1,
      ),
      observedGeneration: 1,
    };
    assert.equal(statusEqual(a, b), true);
    assert.equal(statusEqual(a, { ...b, observedGeneration: 2 }), false);
  });
});
