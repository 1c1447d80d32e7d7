import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ChunkPool,
  ExpositionWriter,
  escapeHelp,
  escapeLabelValue,
  formatGoFloat,
  OUTPUT_CHUNK,
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

describe("ExpositionWriter: the output in chunks", () => {
  const line = (i: number) => `m{i="${i}",pad="${"x".repeat(i % 97)}"} ${i}\n`;
  const joined = (w: ExpositionWriter) => Buffer.concat(w.finish()).toString();

  it("writes past many chunks, in order, without a line cut where a chunk was full", () => {
    const w = new ExpositionWriter("allow-utf-8", 1024);
    let want = "";
    for (let i = 0; i < 40_000; i++) {
      w.write(line(i));
      want += line(i);
    }
    const chunks = w.finish();
    assert.ok(chunks.length > 3, `${chunks.length} chunks`);
    assert.equal(joined(w), want);
    assert.equal(w.length, Buffer.byteLength(want));
    for (const c of chunks) assert.equal(c.at(-1), 10, "each chunk ends with a whole line");
  });

  it("rewinds across chunks, reads a range across chunks, and goes on writing", () => {
    const w = new ExpositionWriter("allow-utf-8", 1024);
    const ends: number[] = [];
    let want = "";
    for (let i = 0; i < 30_000; i++) {
      w.write(line(i));
      ends.push(w.length);
      if (i < 5_000) want += line(i);
    }
    const at = ends[4_999]!;
    const text = Buffer.from(want + line(5_000) + line(5_001));
    // A range from the first chunk to a later one.
    assert.equal(Buffer.from(w.read(100, ends[5_001]!)).toString(), text.subarray(100).toString());
    w.rewind(at, { lastType: undefined, utf8Names: false });
    assert.equal(w.length, at);
    w.write("# tail\n");
    assert.equal(joined(w), `${want}# tail\n`);
  });

  it("a string longer than a chunk is written whole (a chunk of its own size)", () => {
    const w = new ExpositionWriter("allow-utf-8", 1024);
    const long = `${"é".repeat(OUTPUT_CHUNK)}\n`;
    w.write("a 1\n");
    w.write(long);
    w.write("b 2\n");
    assert.equal(joined(w), `a 1\n${long}b 2\n`);
  });

  it("writes into the chunks of a pool first, and gives chunks it took back on rewind", () => {
    /** What the pool holds, taken out of it. */
    const drain = (pool: ChunkPool) => {
      const out: Buffer[] = [];
      for (let c = pool.take(0); c !== undefined; c = pool.take(0)) out.push(c);
      return out;
    };
    const pool = new ChunkPool();
    const mine = [Buffer.alloc(OUTPUT_CHUNK), Buffer.alloc(OUTPUT_CHUNK)];
    for (const c of mine) pool.give(c);
    const w = new ExpositionWriter("allow-utf-8", OUTPUT_CHUNK, pool);
    let n = 0;
    while (w.finish().length < 3) {
      w.write(line(n++));
    }
    const [first, second, third] = w.finish();
    assert.equal(first!.buffer, mine[1]!.buffer, "the constructor took one");
    assert.equal(second!.buffer, mine[0]!.buffer, "then the other");
    assert.ok(third!.buffer !== mine[0]!.buffer && third!.buffer !== mine[1]!.buffer, "then fresh");
    w.rewind(10, { lastType: undefined, utf8Names: false });
    assert.equal(w.finish().length, 1);
    const back = drain(pool);
    const buffers = back.map((c) => c.buffer);
    assert.equal(buffers.length, 2, "the chunks after the first are back");
    assert.ok(buffers.includes(second!.buffer) && buffers.includes(third!.buffer));
    for (const c of back) pool.give(c);
    pool.keep(1);
    assert.equal(pool.take(OUTPUT_CHUNK + 1), undefined, "no chunk is large enough");
    assert.equal(drain(pool).length, 1);
  });
});
