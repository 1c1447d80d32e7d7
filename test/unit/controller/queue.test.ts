import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TokenBucket, WorkQueue } from "../../../controller/operator/queue.ts";

describe("WorkQueue", () => {
  test("a key added twice before it runs is handed out once", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("a");
    q.add("b");
    assert.equal(q.length, 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
  });

  test("a key re-added while it is processed waits until done, then runs again", async () => {
    const q = new WorkQueue();
    q.add("a");
    const first = await q.get();
    q.add("a");
    assert.equal(q.length, 0, "not handed to a second worker");
    q.done(first!);
    assert.equal(q.length, 1);
    assert.equal(await q.get(), "a");
  });

  test("a waiting worker gets a key as soon as it is added", async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add("x");
    assert.equal(await pending, "x");
  });

  test("failures back off exponentially per key and forget resets", () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    assert.deepEqual(
      [q.addRateLimited("a"), q.addRateLimited("a"), q.addRateLimited("a"), q.addRateLimited("a")],
      [10, 20, 40, 50],
    );
    assert.equal(q.addRateLimited("b"), 10, "per key");
    q.forget("a");
    assert.equal(q.addRateLimited("a"), 10);
    q.shutDown();
  });

  test("addAfter delivers later; shutDown releases waiting workers", async () => {
    const q = new WorkQueue();
    q.addAfter("later", 20);
    assert.equal(q.length, 0);
    assert.equal(await q.get(), "later");
    const waiting = q.get();
    q.shutDown();
    assert.equal(await waiting, undefined);
  });

  test("a sooner delayed add replaces a later one; a later one never postpones it", async () => {
    const q = new WorkQueue();
    q.addAfter("a", 60_000);
    q.addAfter("a", 10);
    q.addAfter("a", 60_000);
    const started = Date.now();
    assert.equal(await q.get(), "a");
    assert.ok(Date.now() - started < 5_000, "delivered at the sooner time");
    q.shutDown();
  });

  test("retries also wait for the overall bucket (client-go: 10 qps, burst 100)", () => {
    let now = 0;
    const q = new WorkQueue({ baseDelayMs: 5, retryQps: 10, retryBurst: 3, now: () => now });
    assert.deepEqual(
      ["a", "b", "c", "d", "e"].map((k) => q.addRateLimited(k)),
      [5, 5, 5, 100, 200],
      "three from the burst, then one every 100 ms",
    );
    now += 1000; // the bucket refills, up to its size
    assert.deepEqual(
      ["f", "g", "h", "i"].map((k) => q.addRateLimited(k)),
      [5, 5, 5, 100],
    );
    q.shutDown();
  });

  test("the per-key backoff still wins when it is longer", () => {
    const q = new WorkQueue({ baseDelayMs: 1000, maxDelayMs: 60_000 });
    assert.equal(q.addRateLimited("a"), 1000);
    assert.equal(q.addRateLimited("a"), 2000);
    q.shutDown();
  });

  test("metrics are true at every add, get and done", async () => {
    const depth: number[] = [];
    let adds = 0;
    let retries = 0;
    const waited: number[] = [];
    const q = new WorkQueue({
      metrics: {
        depth: { set: (v) => depth.push(v) },
        adds: { inc: () => adds++ },
        retries: { inc: () => retries++ },
        queueDuration: { observe: (s) => waited.push(s) },
      },
    });
    q.add("a");
    q.add("b");
    q.add("a"); // already waiting: not an add
    assert.equal(depth.at(-1), 2);
    assert.equal(adds, 2);
    const a = await q.get();
    assert.equal(depth.at(-1), 1);
    q.add("a"); // while it runs: held back, counted once
    assert.equal(depth.at(-1), 1);
    q.done(a!);
    assert.equal(depth.at(-1), 2, "queued again when done");
    assert.equal(adds, 3);
    await q.get();
    await q.get();
    assert.equal(depth.at(-1), 0);
    assert.equal(waited.length, 3, "each hand-out observed how long it waited");
    q.addRateLimited("c");
    assert.equal(retries, 1);
    const waiting = q.get();
    q.add("d"); // straight to the waiting worker
    assert.equal(await waiting, "d");
    assert.equal(depth.at(-1), 0);
    q.shutDown();
  });

  test("TokenBucket: a deficit is the wait", () => {
    let now = 0;
    const b = new TokenBucket(2, 1, () => now);
    assert.equal(b.reserve(), 0);
    assert.equal(b.reserve(), 500);
    assert.equal(b.reserve(), 1000);
    now = 1000;
    assert.equal(b.reserve(), 500);
  });
});
