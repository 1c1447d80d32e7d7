import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import { parse } from "../../../controller/exporter/parse/parse.ts";
import { serialize } from "../../../controller/exporter/serialize/serialize.ts";
import { Pipeline } from "../../../controller/exporter/pipeline.ts";

function run(configYaml: string, input: string, key?: string) {
  const c = parseExporterConfig(configYaml);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  const p = new Pipeline(c.config, key === undefined ? undefined : Buffer.from(key));
  const out = p.run(parse(input));
  return { text: serialize(out.families), stats: out.stats };
}

const AGENTS_UP = `# HELP coderd_agents_up The number of active agents per workspace.
# TYPE coderd_agents_up gauge
coderd_agents_up{template_name="a",username="u1",workspace_name="w1"} 1
coderd_agents_up{template_name="a",username="u2",workspace_name="w2"} 1
coderd_agents_up{template_name="b",username="u3",workspace_name="w3"} 0
`;
const AGENTS = `${AGENTS_UP}# HELP coderd_agentstats_rx_bytes Agent Rx bytes
# TYPE coderd_agentstats_rx_bytes gauge
coderd_agentstats_rx_bytes{agent_name="main",username="u1",workspace_name="w1"} 100
coderd_agentstats_rx_bytes{agent_name="main",username="u2",workspace_name="w2"} 2.5e+06
`;

describe("aggregate", () => {
  const cases: { name: string; config: string; input: string; want: string }[] = [
    {
      name: "sum by template",
      config: "aggregate: [{metrics: [coderd_agents_up], by: [template_name]}]",
      input: AGENTS_UP,
      want: `# HELP coderd_agents_up The number of active agents per workspace.
# TYPE coderd_agents_up gauge
coderd_agents_up{template_name="a"} 2
coderd_agents_up{template_name="b"} 0
`,
    },
    {
      name: "max without per-workspace labels; no by/without = one total",
      config: `aggregate:
  - {metrics: [coderd_agents_up], op: count, without: [username, workspace_name]}
  - {metrics: ["coderd_agentstats_*"], op: max}`,
      input: AGENTS,
      want: `# HELP coderd_agents_up The number of active agents per workspace.
# TYPE coderd_agents_up gauge
coderd_agents_up{template_name="a"} 2
coderd_agents_up{template_name="b"} 1
# HELP coderd_agentstats_rx_bytes Agent Rx bytes
# TYPE coderd_agentstats_rx_bytes gauge
coderd_agentstats_rx_bytes 2.5e+06
`,
    },
    {
      name: "min",
      config: "aggregate: [{metrics: [coderd_agents_up], op: min}]",
      input: AGENTS_UP,
      want: `# HELP coderd_agents_up The number of active agents per workspace.
# TYPE coderd_agents_up gauge
coderd_agents_up 0
`,
    },
    {
      // Prometheus 3 reads le="1" as "1.0" (normalizeFloatsInLabelValues),
      // so does the exporter before aggregating.
      name: "histogram: buckets summed per le (numerically), sum and count summed, le order kept",
      config: "aggregate: [{metrics: [h], by: [t]}]",
      input: `# TYPE h histogram
h_bucket{t="a",w="1",le="0.5"} 1
h_bucket{t="a",w="1",le="1"} 2
h_bucket{t="a",w="1",le="+Inf"} 3
h_sum{t="a",w="1"} 1.5
h_count{t="a",w="1"} 3
h_bucket{t="a",w="2",le="0.50"} 4
h_bucket{t="a",w="2",le="1"} 4
h_bucket{t="a",w="2",le="+Inf"} 5
h_sum{t="a",w="2"} 2
h_count{t="a",w="2"} 5
`,
      want: `# TYPE h histogram
h_bucket{t="a",le="0.5"} 5
h_bucket{t="a",le="1.0"} 6
h_bucket{t="a",le="+Inf"} 8
h_sum{t="a"} 3.5
h_count{t="a"} 8
`,
    },
    {
      name: "summary: quantiles left out, sum and count summed",
      config: "aggregate: [{metrics: [s]}]",
      input: `# TYPE s summary
s{w="1",quantile="0.5"} 1
s_sum{w="1"} 2
s_count{w="1"} 3
s{w="2",quantile="0.5"} 9
s_sum{w="2"} 4
s_count{w="2"} 5
`,
      want: `# TYPE s summary
s_sum 6
s_count 8
`,
    },
    {
      name: "histograms only support sum: passed through unchanged otherwise",
      config: "aggregate: [{metrics: [h], op: max}]",
      input: '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      want: '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(run(c.config, c.input).text, c.want));
  }
  it("a histogram series renamed to its family's bare name takes the family with it", () => {
    // h_bucket{le="+Inf"} becomes h: an untyped family h that also takes the
    // histogram's own series (those aggregated before the rename as partial sums).
    const config = `
metric_relabel_configs:
  - {source_labels: [__name__, le], regex: 'h_bucket;\\+Inf', target_label: __name__, replacement: h}
aggregate: [{metrics: [h], without: [w]}]
`;
    const input = `# TYPE h histogram
h_bucket{w="a",le="1"} 1
h_bucket{w="a",le="+Inf"} 2
h_sum{w="a"} 3
h_count{w="a"} 2
h_bucket{w="b",le="1"} 10
h_bucket{w="b",le="+Inf"} 20
h_sum{w="b"} 30
h_count{w="b"} 20
`;
    const whole = run(config, input);
    // le="1" is read as "1.0", as Prometheus 3's parser normalizes it.
    assert.equal(whole.text, 'h{le="+Inf"} 22\nh_bucket{le="1.0"} 11\nh_sum 33\nh_count 22\n');
    const c = parseExporterConfig(config);
    assert.ok(c.ok);
    const p = new Pipeline(c.config);
    const stream = p.stream();
    stream.write(Buffer.from(input));
    assert.equal(stream.end().body.toString(), whole.text);
  });

  it("counts aggregated-away series and unsupported types", () => {
    assert.equal(
      run("aggregate: [{metrics: [coderd_agents_up]}]", AGENTS).stats.dropped.aggregated,
      2,
    );
    const r = run(
      "aggregate: [{metrics: [h], op: max}]",
      '# TYPE h histogram\nh_bucket{le="+Inf"} 1\n',
    );
    assert.equal(r.stats.ruleErrors.aggregate_unsupported_type, 1);
  });
});

describe("pii", () => {
  const input =
    'm{username="alice",owner_email="alice@example.com",t="x"} 1\nm{username="bob",t="x"} 2\n';
  const hmac = (key: string, v: string, n: number) =>
    createHmac("sha256", key).update(v).digest("hex").slice(0, n);

  it("hashes with HMAC-SHA256(key), truncated, and drops labels", () => {
    const out = run(
      "pii: {hash_labels: [username], drop_labels: [owner_email], hash_length: 10}",
      input,
      "k1",
    );
    assert.equal(
      out.text,
      `m{username="${hmac("k1", "alice", 10)}",t="x"} 1\nm{username="${hmac("k1", "bob", 10)}",t="x"} 2\n`,
    );
    assert.ok(!out.text.includes("alice"));
  });
  it("is stable for the same key and differs across keys", () => {
    const cfg = "pii: {hash_labels: [username]}";
    assert.equal(run(cfg, input, "k1").text, run(cfg, input, "k1").text);
    assert.notEqual(run(cfg, input, "k1").text, run(cfg, input, "k2").text);
  });
  it("without a key, labels to hash are dropped (never served in clear)", () => {
    const out = run("pii: {hash_labels: [username, owner_email]}", input);
    assert.equal(out.text, 'm{t="x"} 1\nm{t="x"} 2\n'.replace('m{t="x"} 2\n', ""));
    assert.equal(out.stats.dropped.duplicate, 1);
  });
});

describe("series limit", () => {
  const input =
    '# TYPE a gauge\na{i="1"} 1\na{i="2"} 1\na{i="3"} 1\n# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\nb 1\n';
  it("cuts counters/gauges, never half a histogram, and counts the cut", () => {
    const out = run("series_limit: 4", input);
    assert.equal(out.text, '# TYPE a gauge\na{i="1"} 1\na{i="2"} 1\na{i="3"} 1\nb 1\n');
    assert.equal(out.stats.dropped.limit, 3);
    assert.equal(out.stats.seriesOut, 4);
  });
  it("cuts inside a gauge family", () => {
    const out = run("series_limit: 2", input);
    assert.equal(out.text, '# TYPE a gauge\na{i="1"} 1\na{i="2"} 1\n');
    assert.equal(out.stats.dropped.limit, 5);
  });
});

describe("pipeline", () => {
  it("identity config returns the input unchanged", () => {
    assert.equal(run("", AGENTS).text, AGENTS);
  });
  it("drop_metrics and the drop_deprecated preset", () => {
    const input =
      '# TYPE coderd_api_workspace_latest_build_total gauge\ncoderd_api_workspace_latest_build_total{status="ok"} 1\n' +
      '# TYPE coderd_api_workspace_latest_build gauge\ncoderd_api_workspace_latest_build{status="ok"} 1\n' +
      "go_goroutines 5\n";
    const out = run("drop_metrics: ['go_*']\npresets: [drop_deprecated]", input);
    assert.equal(
      out.text,
      '# TYPE coderd_api_workspace_latest_build gauge\ncoderd_api_workspace_latest_build{status="ok"} 1\n',
    );
    assert.equal(out.stats.dropped.drop_metrics, 2);
  });
  it("renaming keeps histogram membership and metadata", () => {
    const out = run(
      `- source_labels: [__name__]
  regex: "coderd_(.*)"
  target_label: __name__
  replacement: "coder_$1"`,
      '# HELP coderd_h H.\n# TYPE coderd_h histogram\ncoderd_h_bucket{le="+Inf"} 1\ncoderd_h_sum 1\ncoderd_h_count 1\n',
    );
    assert.equal(
      out.text,
      '# HELP coder_h H.\n# TYPE coder_h histogram\ncoder_h_bucket{le="+Inf"} 1\ncoder_h_sum 1\ncoder_h_count 1\n',
    );
  });
  it("duplicates created by labeldrop are removed (first wins) and counted", () => {
    const out = run(
      "- {action: labeldrop, regex: workspace_name}",
      'm{workspace_name="a"} 1\nm{workspace_name="b"} 2\n',
    );
    assert.equal(out.text, "m 1\n");
    assert.equal(out.stats.dropped.duplicate, 1);
  });
  it("per_template preset reduces per-workspace series", () => {
    const out = run("presets: [per_template]", AGENTS);
    assert.equal(
      out.text,
      `# HELP coderd_agents_up The number of active agents per workspace.
# TYPE coderd_agents_up gauge
coderd_agents_up{template_name="a"} 2
coderd_agents_up{template_name="b"} 0
# HELP coderd_agentstats_rx_bytes Agent Rx bytes
# TYPE coderd_agentstats_rx_bytes gauge
coderd_agentstats_rx_bytes 2.5001e+06
`,
    );
  });
  it("families emptied by rules go, their HELP/TYPE with them", () => {
    const out = run("- {source_labels: [__name__], regex: coderd_agents_up, action: drop}", AGENTS);
    assert.ok(!out.text.includes("coderd_agents_up"));
    assert.equal(out.stats.dropped.relabel, 3);
  });
});

describe("transform (streaming, bytes in and out)", () => {
  const cases: { name: string; input: string; config: string }[] = [
    { name: "ASCII payload, identity: bytes copied verbatim", input: AGENTS, config: "" },
    {
      name: "non-ASCII label values and HELP",
      input: '# HELP m Größe “quoted”\nm{user="jörg",x="日本"} 1\nm{user="zoë",x="\\"q\\""} 2\n',
      config: "",
    },
    {
      name: "non-ASCII payload with changed samples",
      input: 'm{user="jörg",x="日本"} 1\nn{user="zoë"} 2\n',
      config: "- {target_label: cluster, replacement: ü}",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const cfg = parseExporterConfig(c.config);
      assert.ok(cfg.ok);
      const viaText = run(c.config, c.input).text;
      const out = new Pipeline(cfg.config).transform(Buffer.from(c.input, "utf8"));
      assert.equal(out.body.toString("utf8"), viaText);
      if (c.config === "") assert.equal(out.body.toString("utf8"), c.input);
    });
  }
  it("rejects invalid UTF-8 with the line", () => {
    const cfg = parseExporterConfig("");
    assert.ok(cfg.ok);
    const bad = Buffer.concat([
      Buffer.from('a 1\nb 2\nc{x="'),
      Buffer.from([0xc3]),
      Buffer.from('"} 3\n'),
    ]);
    assert.throws(() => new Pipeline(cfg.config).transform(bad), /line 3: invalid UTF-8/);
  });
});

describe("relabel templates", () => {
  it("a rule reading a per-series label gives the same output once templates stop paying", () => {
    // Every series has its own `owner`: after enough misses the template memo
    // gives up on the family and the rule engine relabels it directly.
    const config = parseExporterConfig(`
metric_relabel_configs:
  - {source_labels: [owner], regex: "(.+)", target_label: user, replacement: "u-$1"}
  - {source_labels: [owner], regex: "o-1.*", action: drop}
aggregate: [{metrics: [agg], without: [owner, user]}]
`);
    assert.ok(config.ok);
    let input = "# TYPE m gauge\n";
    for (let i = 0; i < 2000; i++) input += `m{owner="o-${i}",t="x"} ${i}\n`;
    input += "# TYPE agg gauge\n";
    for (let i = 0; i < 2000; i++) input += `agg{owner="o-${i}",t="${i % 3}"} 1\n`;
    const templated = new Pipeline(config.config);
    const ruleByRule = new Pipeline(config.config, undefined, { templates: false });
    for (let round = 0; round < 2; round++) {
      const a = templated.transform(input);
      const b = ruleByRule.transform(input);
      assert.equal(a.body.toString(), b.body.toString());
      assert.deepEqual(a.stats, b.stats);
    }
  });
});

describe("stream", () => {
  const feed = (p: Pipeline, input: Buffer, size: number) => {
    const stream = p.stream();
    for (let at = 0; at < input.length; at += size) stream.write(input.subarray(at, at + size));
    return stream.end();
  };
  it("gives the same bytes and stats as transform, whatever the pieces", async () => {
    const { generateFixture } = await import("../../support/coder-fixture.ts");
    const input = Buffer.from(generateFixture({ workspaces: 30 }));
    const cfg = parseExporterConfig("presets: [per_template]\npii: {drop_labels: [username]}\n");
    assert.ok(cfg.ok);
    const whole = new Pipeline(cfg.config).transform(input);
    const p = new Pipeline(cfg.config);
    for (const size of [1, 3, 100, 4096, input.length]) {
      const out = feed(p, input, size);
      assert.equal(out.body.toString(), whole.body.toString(), `pieces of ${size}`);
      // (The series cache's own figures differ: `p` has seen the payload before.)
      const { seriesCached: _, cacheSeries: __, cacheBytes: ___, ...stats } = out.stats;
      const { seriesCached: _w, cacheSeries: __w, cacheBytes: ___w, ...want } = whole.stats;
      assert.deepEqual(stats, want);
    }
  });
  it("a family written as it comes, over many output chunks, then held (a timestamp): the same as parsed families", () => {
    // 40,000 lines (~2 MB of output, chunks of 1 MiB) are written directly;
    // the timestamped line at the end takes them back (across chunks) and
    // the family is written whole at its end. Served from reused chunks too.
    let text = "# HELP g A gauge.\n# TYPE g gauge\n";
    for (let i = 0; i < 40_000; i++) text += `g{i="${i}",status="OK"} ${i}\n`;
    const held = `${text}g{i="last",status="OK"} 1 1700000000000\n# TYPE h counter\nh_total 1\n`;
    const config = `metric_relabel_configs:
  - {source_labels: [status], target_label: status, action: lowercase}
  - {target_label: cluster, replacement: prod-eu}
`;
    const cfg = parseExporterConfig(config);
    assert.ok(cfg.ok);
    const p = new Pipeline(cfg.config);
    for (const input of [text, held, held, text]) {
      const out = feed(p, Buffer.from(input), 65_536);
      assert.ok(out.chunks.length > 1, `${out.chunks.length} chunks`);
      assert.equal(out.body.toString(), run(config, input).text);
      out.release();
    }
  });
  it("rejects malformed input with ParseError and its line", () => {
    const cfg = parseExporterConfig("");
    assert.ok(cfg.ok);
    assert.throws(() => feed(new Pipeline(cfg.config), Buffer.from("a 1\nb{ 2\n"), 3), /line 2/);
    const bad = Buffer.concat([
      Buffer.from('a 1\nb 2\nc{x="'),
      Buffer.from([0xc3]),
      Buffer.from('"} 3\n'),
    ]);
    assert.throws(() => feed(new Pipeline(cfg.config), bad, 5), /line 3: invalid UTF-8/);
  });
});
