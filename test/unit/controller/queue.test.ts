import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WorkQueue } from "../../../controller/operator/queue.ts";

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
});
