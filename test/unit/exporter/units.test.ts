// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Go-style ${1} templates under test, not JS template strings
// Small units: globs, flags, Go template expansion.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GlobSet, globMatch } from "../../../controller/exporter/config/glob.ts";
import { parseListen } from "../../../controller/common/address.ts";
import {
  envName,
  parseCommandLine,
  parseFlags,
  UsageError,
} from "../../../controller/common/flags.ts";
import { parseDuration, parseSize } from "../../../controller/common/units.ts";
import { EXPORTER_ENV_PREFIX } from "../../../controller/exporter/main.ts";
import { compileTemplate, expand, Regex } from "../../../controller/exporter/relabel/regex.ts";

describe("globs", () => {
  const cases: [string, string, boolean][] = [
    ["go_*", "go_goroutines", true],
    ["go_*", "xgo_goroutines", false],
    ["*_total", "coderd_api_requests_processed_total", true],
    ["coderd_agent?_up", "coderd_agents_up", true],
    ["coderd_agent?_up", "coderd_agent_up", false],
    ["a*b*c", "axxbyyc", true],
    ["a*b*c", "axxbyy", false],
    ["*", "", true],
    ["exact", "exact", true],
  ];
  for (const [pattern, name, want] of cases) {
    it(`${pattern} ~ ${name || '""'} = ${want}`, () => {
      assert.equal(globMatch(pattern, name), want);
      assert.equal(new GlobSet([pattern]).matches(name), want);
    });
  }
  it("a pathological glob stays fast", () => {
    const t = performance.now();
    assert.equal(globMatch(`${"*a".repeat(20)}b`, "a".repeat(5000)), false);
    assert.ok(performance.now() - t < 1000);
  });
});

describe("flags", () => {
  const specs = [
    { name: "upstream", help: "", default: "http://127.0.0.1:2112/metrics" },
    { name: "scrape-timeout", help: "", default: "10s" },
  ];
  it("defaults, environment, then argv (flags win)", () => {
    assert.deepEqual(parseFlags([], specs, { env: {}, envPrefix: EXPORTER_ENV_PREFIX }), {
      upstream: "http://127.0.0.1:2112/metrics",
      "scrape-timeout": "10s",
    });
    const env = {
      CODER_METRICS_EXPORTER_SCRAPE_TIMEOUT: "3s",
      CODER_METRICS_EXPORTER_UPSTREAM: "http://a/m",
    };
    assert.deepEqual(parseFlags([], specs, { env, envPrefix: EXPORTER_ENV_PREFIX }), {
      upstream: "http://a/m",
      "scrape-timeout": "3s",
    });
    assert.deepEqual(
      parseFlags(["--scrape-timeout=1s", "--upstream", "http://b/m"], specs, {
        env,
        envPrefix: EXPORTER_ENV_PREFIX,
      }),
      {
        upstream: "http://b/m",
        "scrape-timeout": "1s",
      },
    );
    assert.equal(
      envName("max-body-bytes", EXPORTER_ENV_PREFIX),
      "CODER_METRICS_EXPORTER_MAX_BODY_BYTES",
    );
  });
  it("short flags, own environment variables and positionals", () => {
    const withShort = [
      { name: "namespace", help: "", short: "n", env: "POD_NAMESPACE", default: "default" },
    ];
    assert.deepEqual(
      parseCommandLine(["-n", "coder", "cr"], withShort, { env: {}, positionals: true }),
      { values: { namespace: "coder" }, positionals: ["cr"] },
    );
    assert.deepEqual(parseFlags([], withShort, { env: { POD_NAMESPACE: "ns" } }), {
      namespace: "ns",
    });
    assert.throws(() => parseFlags(["cr"], withShort, { env: {} }), /unexpected argument/);
  });
  it("rejects unknown flags and missing values", () => {
    assert.throws(() => parseFlags(["--nope"], specs, { env: {} }), UsageError);
    assert.throws(() => parseFlags(["--upstream"], specs, { env: {} }), /needs a value/);
  });
  it("durations, sizes, listen addresses", () => {
    assert.equal(parseDuration("t", "10s"), 10_000);
    assert.equal(parseDuration("t", "500ms"), 500);
    assert.equal(parseDuration("t", "1.5"), 1500);
    assert.throws(() => parseDuration("t", "ten"), UsageError);
    // The CRD's Duration pattern allows Go's compound form; every flag takes it too.
    assert.equal(parseDuration("t", "1m30s"), 90_000);
    assert.equal(parseDuration("t", "1h0m5s"), 3_605_000);
    assert.throws(() => parseDuration("t", "1m30"), UsageError);
    assert.throws(() => parseDuration("t", "0s"), UsageError);
    assert.equal(parseSize("s", "64MiB"), 64 * 1024 * 1024);
    assert.equal(parseSize("s", "10MB"), 10_000_000);
    assert.equal(parseSize("s", "1024"), 1024);
    assert.throws(() => parseSize("s", "lots"), UsageError);
    assert.deepEqual(parseListen("l", "0.0.0.0:2113"), { host: "0.0.0.0", port: 2113 });
    assert.deepEqual(parseListen("l", ":2113"), { host: "0.0.0.0", port: 2113 });
    assert.deepEqual(parseListen("l", "[::1]:0"), { host: "::1", port: 0 });
    assert.throws(() => parseListen("l", "2113"), UsageError);
  });
});

describe("Go template expansion (regexp.Expand)", () => {
  const re = new Regex("(?P<a>x+)(y)?");
  const cases: [string, string, string][] = [
    ["$1", "xx", "xx"],
    ["${1}", "xx", "xx"],
    ["$a", "xx", "xx"],
    ["${a}-$2", "xxy", "xx-y"],
    ["$2", "xx", ""],
    ["$9", "xx", ""],
    ["$1x", "xx", ""],
    ["${1}x", "xx", "xxx"],
    ["$$1", "xx", "$1"],
    ["$", "xx", "$"],
    ["${", "xx", "${"],
    ["${1", "xx", "${1"],
    ["$-", "xx", "$-"],
    ["$01", "xx", "xx"],
  ];
  for (const [tpl, input, want] of cases) {
    it(`${tpl} on ${input} → ${JSON.stringify(want)}`, () => {
      const m = re.match(input);
      assert.ok(m);
      assert.equal(expand(compileTemplate(tpl, re), input, m), want);
    });
  }
  it("fast paths agree with the engine", () => {
    for (const [src, input] of [
      ["foo|bar", "bar"],
      ["foo|bar", "foobar"],
      ["go_.*", "go_x"],
      ["go_.*", "go_x\ny"],
      ["(.*)", "a\nb"],
      ["", ""],
      ["", "x"],
    ] as const) {
      const fast = new Regex(src);
      assert.equal(fast.test(input), fast.re.matches(input), `${src} ~ ${JSON.stringify(input)}`);
    }
  });
});
