// Content negotiation, name escaping and case mapping against the Go code
// they follow (promref: common's expfmt and model, Go's strings package).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { goToLower, goToUpper } from "../../../controller/exporter/relabel/casemap.ts";
import {
  negotiateEscaping,
  textContentType,
} from "../../../controller/exporter/serve/negotiate.ts";
import {
  type Escaping,
  escapeExposition,
  escapeName,
} from "../../../controller/exporter/serialize/serialize.ts";
import { promrefCasemap, promrefEscape, promrefNegotiate } from "../../support/promref.ts";

const PROMETHEUS_3 =
  "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3";
const PROMETHEUS_2 =
  "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

describe("content negotiation is expfmt.NegotiateAccept(h, FmtText)", () => {
  const check = (headers: (string | undefined)[]) => {
    const want = promrefNegotiate(headers);
    headers.forEach((h, i) => {
      const got = textContentType(negotiateEscaping(h));
      assert.equal(got, want[i]!.content_type, `Accept: ${JSON.stringify(h)}`);
    });
  };

  it("for known scrapers and odd headers", () => {
    check([
      PROMETHEUS_3,
      PROMETHEUS_2,
      undefined,
      "",
      "*/*",
      "text/plain",
      "text/plain;version=0.0.4",
      "text/plain;version=0.0.4;escaping=allow-utf-8",
      "text/plain;version=0.0.4;escaping=dots",
      "text/plain;version=0.0.4;escaping=values",
      "text/plain;version=0.0.4;escaping=bogus",
      "text/plain;version=1.0.0;escaping=allow-utf-8",
      "application/json;escaping=allow-utf-8,text/plain;q=0.5",
      "text/*;escaping=allow-utf-8",
      "*/*;escaping=allow-utf-8",
      "text/plain;escaping=allow-utf-8;q=0.1,text/plain;escaping=dots;q=0.9",
      "text/plain; escaping = allow-utf-8",
      "text/plain;q= 0.5;escaping=allow-utf-8,*/*;escaping=values",
      "Text/Plain;escaping=allow-utf-8",
      "text/plain/x;escaping=allow-utf-8",
      "text;escaping=allow-utf-8",
      "*;escaping=allow-utf-8",
      "text/plain;q=nan;escaping=allow-utf-8,text/plain;q=0.5;escaping=dots",
      "text/plain;q=1e40;escaping=dots,text/plain;escaping=values",
      "text/plain;q=0x1p-1;escaping=dots,text/plain;q=0.4;escaping=values",
      // More than 12 clauses: Go's pdqsort, not its insertion sort.
      Array.from(
        { length: 20 },
        (_, i) => `a/b${i};q=0.${i % 7};escaping=${["dots", "values", "allow-utf-8"][i % 3]}`,
      )
        .concat(["*/*;q=0.05", "text/plain;q=0.3"])
        .join(","),
    ]);
  });

  it("for generated headers", () => {
    const clause = fc
      .tuple(
        fc.constantFrom(
          "text/plain",
          "*/*",
          "text/*",
          "application/openmetrics-text",
          "a/b",
          "*",
          " text/plain ",
        ),
        fc.array(
          fc.constantFrom(
            "version=0.0.4",
            "version=1.0.0",
            "escaping=allow-utf-8",
            "escaping=underscores",
            "escaping=dots",
            "escaping=values",
            "escaping=x",
            "q=0.5",
            "q=0.9",
            "q=1",
            "q=0",
            "q=x",
            "q=0.50",
            "charset=utf-8",
            "a=b=c",
            "novalue",
          ),
          { maxLength: 4 },
        ),
      )
      .map(([t, ps]) => [t, ...ps].join(";"));
    const headers = fc.sample(
      fc.array(clause, { maxLength: 16 }).map((cs) => cs.join(",")),
      { numRuns: 2000, seed: 7 },
    );
    check(headers);
  });
});

describe("name escaping is model.EscapeName as the expfmt encoder applies it", () => {
  it("for metric names, in every scheme", () => {
    const names = [
      "coder.http.requests",
      "http_requests_total",
      "a:b",
      "1abc",
      "a-b.c_d",
      "ünï",
      "  m",
      "_",
      "a__b",
      "x.y_z",
      "😀x",
      "é1",
      ...fc.sample(fc.string({ unit: "grapheme", minLength: 1, maxLength: 8 }), {
        numRuns: 300,
        seed: 3,
      }),
    ].filter((n) => !n.includes("\0") && !n.startsWith("-"));
    for (const scheme of ["underscores", "dots", "values"] as Escaping[]) {
      const want = promrefEscape(scheme, names);
      names.forEach((n, i) => {
        assert.equal(escapeName(n, scheme, false), want[i], `${scheme} ${JSON.stringify(n)}`);
      });
    }
  });

  it("label names by the label rule: a colon is escaped too (expfmt would write it bare)", () => {
    assert.equal(escapeName("c:d", "underscores", true), "c_d");
    assert.equal(escapeName("c:d", "underscores", false), "c:d");
    assert.equal(escapeName("http.route", "underscores", true), "http_route");
    assert.equal(escapeName("http.route", "dots", true), "http_dot_route");
    assert.equal(escapeName("c:d", "values", true), "U__c_3a_d");
  });

  it("escapeExposition rewrites names as client_golang serves them to such scrapers", () => {
    const body = Buffer.from(
      '# HELP "coder.http.requests" Requests.\n# TYPE "coder.http.requests" counter\n' +
        '{"coder.http.requests","http.route"="/api/v2","c:d"="1"} 7\n' +
        '# TYPE "a.b" histogram\n{"a.b_bucket",le="1.0"} 1\n{"a.b_sum"} 1\n{"a.b_count"} 1\n' +
        'plain{a="1"} 2\n',
    );
    assert.equal(
      escapeExposition(body, "underscores").toString(),
      "# HELP coder_http_requests Requests.\n# TYPE coder_http_requests counter\n" +
        'coder_http_requests{http_route="/api/v2",c_d="1"} 7\n' +
        '# TYPE a_b histogram\na_b_bucket{le="1.0"} 1\na_b_sum 1\na_b_count 1\n' +
        '# TYPE plain untyped\nplain{a="1"} 2\n',
    );
    // dots: the family name is escaped, a histogram's suffix kept (as expfmt writes name + "_bucket").
    assert.match(escapeExposition(body, "dots").toString(), /^a_dot_b_bucket\{le="1.0"\} 1$/m);
    assert.match(escapeExposition(body, "values").toString(), /^U__a_2e_b_sum 1$/m);
  });
});

describe("lowercase/uppercase are Go's strings.ToLower/ToUpper", () => {
  it("on every code point", () => {
    const go = new Map(promrefCasemap().map(([cp, lo, up]) => [cp, [lo, up] as const]));
    const bad: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      const [lo, up] = go.get(cp) ?? [cp, cp];
      if (goToLower(ch) !== String.fromCodePoint(lo)) bad.push(`lower U+${cp.toString(16)}`);
      if (goToUpper(ch) !== String.fromCodePoint(up)) bad.push(`upper U+${cp.toString(16)}`);
    }
    assert.deepEqual(bad.slice(0, 20), []);
  });

  it("on strings, code point by code point (no final sigma, no ß → SS)", () => {
    assert.equal(goToLower("ΣΑΣ İ"), "σασ i");
    assert.equal(goToUpper("straße ﬀ"), "STRAßE ﬀ");
  });
});
