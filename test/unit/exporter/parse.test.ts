import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ParseError } from "../../../controller/exporter/model/model.ts";
import { parse, parseGoFloat } from "../../../controller/exporter/parse/parse.ts";
import { serialize } from "../../../controller/exporter/serialize/serialize.ts";
import { type PlainFamily, plain } from "./helpers.ts";

describe("parse: accepted input", () => {
  const cases: { name: string; input: string; want: PlainFamily[] }[] = [
    {
      name: "HELP, TYPE and labelled samples",
      input:
        '# HELP a_total Requests.\n# TYPE a_total counter\na_total{code="200",method="GET"} 3\n',
      want: [
        {
          name: "a_total",
          type: "counter",
          help: "Requests.",
          samples: [{ name: "a_total", labels: { code: "200", method: "GET" }, value: 3 }],
        },
      ],
    },
    {
      name: 'label value escapes \\\\ \\" \\n are exact; other escapes stay',
      input: 'm{a="x\\\\y",b="q\\"q",c="l\\nl",d="t\\tt"} 1\n',
      want: [
        {
          name: "m",
          type: "untyped",
          samples: [
            { name: "m", labels: { a: "x\\y", b: 'q"q', c: "l\nl", d: "t\\tt" }, value: 1 },
          ],
        },
      ],
    },
    {
      name: "HELP escapes \\\\ and \\n only",
      input: '# HELP m one\\\\two\\nthree \\"q\\"\nm 1\n',
      want: [
        {
          name: "m",
          type: "untyped",
          help: 'one\\two\nthree \\"q\\"',
          samples: [{ name: "m", labels: {}, value: 1 }],
        },
      ],
    },
    {
      name: "odd but legal whitespace: tabs, spaces around = and braces",
      input: 'm\t{ a = "1" ,\tb="2" }\t 7 \t\n',
      want: [
        {
          name: "m",
          type: "untyped",
          samples: [{ name: "m", labels: { a: "1", b: "2" }, value: 7 }],
        },
      ],
    },
    {
      // Prometheus 3's parser takes the name from the start of the line.
      name: "blanks before a metric name are part of it",
      input: '  m{a="1"} 7\n',
      want: [
        {
          name: "  m",
          type: "untyped",
          samples: [{ name: "  m", labels: { a: "1" }, value: 7 }],
        },
      ],
    },
    {
      name: "UTF-8 names: quoted metric name inside the braces, quoted label names",
      input:
        '# HELP "coder.http.requests" Requests.\n# TYPE "coder.http.requests" counter\n' +
        '{"coder.http.requests", "http.route"="/api/v2",code="200"} 7\n{a="1","b.c"} 2\n',
      want: [
        {
          name: "coder.http.requests",
          type: "counter",
          help: "Requests.",
          samples: [
            {
              name: "coder.http.requests",
              labels: { "http.route": "/api/v2", code: "200" },
              value: 7,
            },
          ],
        },
        { name: "b.c", type: "untyped", samples: [{ name: "b.c", labels: { a: "1" }, value: 2 }] },
      ],
    },
    {
      name: "trailing comma and space-separated labels (as Prometheus's lexer allows)",
      input: 'm{a="1" b="2",} 1\n',
      want: [
        {
          name: "m",
          type: "untyped",
          samples: [{ name: "m", labels: { a: "1", b: "2" }, value: 1 }],
        },
      ],
    },
    {
      name: "empty label set and value right after the brace",
      input: "m{}1\n",
      want: [{ name: "m", type: "untyped", samples: [{ name: "m", labels: {}, value: 1 }] }],
    },
    {
      name: "timestamps are preserved",
      input: "m 1 1700000000000\nn 2.5 -0\n".replace(" -0", " 0"),
      want: [
        {
          name: "m",
          type: "untyped",
          samples: [{ name: "m", labels: {}, value: 1, timestamp: 1700000000000 }],
        },
        {
          name: "n",
          type: "untyped",
          samples: [{ name: "n", labels: {}, value: 2.5, timestamp: 0 }],
        },
      ],
    },
    {
      name: "special values",
      input: "a NaN\nb +Inf\nc -inf\nd Infinity\ne 1e3\nf -.5\n",
      want: [
        { name: "a", type: "untyped", samples: [{ name: "a", labels: {}, value: Number.NaN }] },
        {
          name: "b",
          type: "untyped",
          samples: [{ name: "b", labels: {}, value: Number.POSITIVE_INFINITY }],
        },
        {
          name: "c",
          type: "untyped",
          samples: [{ name: "c", labels: {}, value: Number.NEGATIVE_INFINITY }],
        },
        {
          name: "d",
          type: "untyped",
          samples: [{ name: "d", labels: {}, value: Number.POSITIVE_INFINITY }],
        },
        { name: "e", type: "untyped", samples: [{ name: "e", labels: {}, value: 1000 }] },
        { name: "f", type: "untyped", samples: [{ name: "f", labels: {}, value: -0.5 }] },
      ],
    },
    {
      name: "histogram samples stay in their family",
      input:
        "# TYPE h histogram\n" +
        'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\nh_other 1\n',
      want: [
        {
          name: "h",
          type: "histogram",
          samples: [
            // Prometheus 3 normalizes le (and a summary's quantile) as it parses.
            { name: "h_bucket", labels: { le: "1.0" }, value: 1 },
            { name: "h_bucket", labels: { le: "+Inf" }, value: 2 },
            { name: "h_sum", labels: {}, value: 3 },
            { name: "h_count", labels: {}, value: 2 },
          ],
        },
        { name: "h_other", type: "untyped", samples: [{ name: "h_other", labels: {}, value: 1 }] },
      ],
    },
    {
      name: "summary quantiles, sum and count",
      input: '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n',
      want: [
        {
          name: "s",
          type: "summary",
          samples: [
            { name: "s", labels: { quantile: "0.5" }, value: 1 },
            { name: "s_sum", labels: {}, value: 2 },
            { name: "s_count", labels: {}, value: 3 },
          ],
        },
      ],
    },
    {
      name: "comments, blank lines, HELP with trailing text kept, #HELP without space is a comment",
      input: "# just a comment\n\n   \n#HELP m nope\n# HELP m  two spaces \nm 1",
      want: [
        {
          name: "m",
          type: "untyped",
          help: " two spaces ",
          samples: [{ name: "m", labels: {}, value: 1 }],
        },
      ],
    },
    {
      name: "raw newline inside a label value (legal in Prometheus's lexer)",
      input: 'm{a="x\ny"} 1\n',
      want: [
        { name: "m", type: "untyped", samples: [{ name: "m", labels: { a: "x\ny" }, value: 1 }] },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepStrictEqual(plain(parse(c.input)), c.want);
    });
  }
});

describe("parse: rejected input carries line and reason", () => {
  const cases: { name: string; input: string; line: number; reason: RegExp }[] = [
    { name: "missing value", input: "a 1\nb\n", line: 2, reason: /expected value/ },
    { name: "bad value", input: "a 1\n\nb x\n", line: 3, reason: /invalid value "x"/ },
    {
      name: "hex value (Prometheus keeps to pre-Go 1.13 floats)",
      input: "a 0x10\n",
      line: 1,
      reason: /invalid value/,
    },
    { name: "underscore value", input: "a 1_000\n", line: 1, reason: /invalid value/ },
    { name: "overflowing value", input: "a 1e400\n", line: 1, reason: /invalid value/ },
    { name: "signed NaN", input: "a -NaN\n", line: 1, reason: /invalid value/ },
    { name: "negative timestamp", input: "a 1 -5\n", line: 1, reason: /timestamp/ },
    { name: "junk after timestamp", input: "a 1 5 x\n", line: 1, reason: /end of line/ },
    { name: "unterminated label value", input: 'a{b="c} 1\n', line: 1, reason: /unterminated/ },
    { name: "unquoted label value", input: "a{b=c} 1\n", line: 1, reason: /quoted value/ },
    { name: "missing =", input: 'a{b "c"} 1\n', line: 1, reason: /expected "="/ },
    { name: "double comma", input: 'a{b="c",,d="e"} 1\n', line: 1, reason: /expected label name/ },
    {
      name: "duplicate label",
      input: 'a{b="1",b="2"} 1\n',
      line: 1,
      reason: /duplicate label name "b"/,
    },
    { name: "__name__ label", input: 'a{__name__="x"} 1\n', line: 1, reason: /__name__/ },
    {
      name: "invalid TYPE",
      input: "# TYPE a countr\n",
      line: 1,
      reason: /invalid metric type "countr"/,
    },
    {
      name: "TYPE with two spaces",
      input: "# TYPE a  counter\n",
      line: 1,
      reason: /invalid metric type/,
    },
    {
      name: "HELP without a name",
      input: "# HELP 9 x\n",
      line: 1,
      reason: /metric name after HELP/,
    },
    {
      name: "line starting with a digit",
      input: "a 1\n9a 1\n",
      line: 2,
      reason: /expected a metric name/,
    },
    { name: "CRLF line endings", input: "a 1\r\n", line: 1, reason: /invalid value/ },
    // At a line start a NUL ends the input (Prometheus's lexer), elsewhere it is refused.
    { name: "NUL byte", input: "a 1\nb 1\0\n", line: 2, reason: /NUL/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.throws(
        () => parse(c.input),
        (err: unknown) => {
          assert.ok(err instanceof ParseError, `got ${String(err)}`);
          assert.equal(err.line, c.line);
          assert.match(err.reason, c.reason);
          return true;
        },
      );
    });
  }

  it("invalid UTF-8 bytes are rejected with their line", () => {
    const bytes = Buffer.concat([
      Buffer.from('a 1\nb{x="'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"} 1\n'),
    ]);
    assert.throws(
      () => parse(bytes),
      (err: unknown) => err instanceof ParseError && err.line === 2,
    );
  });
});

describe("parse: OpenMetrics", () => {
  // Prometheus 3 stores _created samples as series (its created-timestamp
  // feature is off by default) and truncates timestamps to milliseconds.
  it("converts counters, keeps _created as series, drops exemplars, timestamps to ms", () => {
    const input =
      "# TYPE req counter\n# HELP req Requests.\n# UNIT req requests\n" +
      'req_total{code="200"} 5 1700000000.5 # {trace_id="abc"} 1 1700000000\n' +
      'req_created{code="200"} 1600000000\n' +
      "# TYPE up gauge\nup 1\n# EOF\n";
    assert.deepStrictEqual(plain(parse(input, { format: "openmetrics" })), [
      {
        name: "req_total",
        type: "counter",
        help: "Requests.",
        samples: [
          { name: "req_total", labels: { code: "200" }, value: 5, timestamp: 1700000000500 },
        ],
      },
      {
        name: "req_created",
        type: "untyped",
        samples: [{ name: "req_created", labels: { code: "200" }, value: 1600000000 }],
      },
      { name: "up", type: "gauge", samples: [{ name: "up", labels: {}, value: 1 }] },
    ]);
  });
  it("requires # EOF", () => {
    assert.throws(() => parse("up 1\n", { format: "openmetrics" }), /must end with # EOF/);
  });
  it("rejects data after # EOF", () => {
    assert.throws(() => parse("up 1\n# EOF\nup 2\n", { format: "openmetrics" }), /after # EOF/);
  });
});

describe("parse ∘ serialize", () => {
  it("writes untouched input back byte for byte", () => {
    const input =
      '# HELP a_total Requests with \\\\ and \\n.\n# TYPE a_total counter\na_total{code="200"} 1e+06 1700000000000\n' +
      'a_total{code="500"} 0.000123\n# TYPE g gauge\ng{v="q\\"\\\\"} -Inf\n';
    assert.equal(serialize(parse(input)), input);
  });
  it("terminates a final line that had no newline", () => {
    assert.equal(serialize(parse("a 1\nb 2")), "a 1\nb 2\n");
  });
});

describe("parseGoFloat", () => {
  const cases: [string, number | undefined][] = [
    ["1", 1],
    ["-1.5e-3", -0.0015],
    ["+Inf", Number.POSITIVE_INFINITY],
    ["inf", Number.POSITIVE_INFINITY],
    ["-infinity", Number.NEGATIVE_INFINITY],
    ["nan", Number.NaN],
    ["NaN", Number.NaN],
    ["+nan", undefined],
    ["infin", undefined],
    ["0x1p3", undefined],
    ["1_0", undefined],
    [".", undefined],
    ["1e", undefined],
    ["1e309", undefined],
    ["1e-400", 0],
  ];
  for (const [input, want] of cases) {
    it(JSON.stringify(input), () => assert.deepStrictEqual(parseGoFloat(input), want));
  }
});
