// Aggregated counters over a sequence of scrapes: workspaces come and go,
// inputs reset, and the aggregate must stay a counter whose increases are the
// inputs' increases (counter-state.ts). Everything is observed through the
// pipeline's output and stats, as Prometheus and the self-metrics see them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseExporterConfig } from "../../../controller/exporter/config/config.ts";
import { Pipeline } from "../../../controller/exporter/pipeline.ts";
import { rng } from "../../support/coder-fixture.ts";

const MINUTE = 60_000;

/** A pipeline with a clock the test moves. */
function pipeline(configYaml: string): { p: Pipeline; clock: { now: number } } {
  const c = parseExporterConfig(configYaml);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  const clock = { now: 0 };
  return { p: new Pipeline(c.config, undefined, { clock: () => clock.now }), clock };
}

/** One scrape: the served series (`name{labels}` → value) and the stats. */
function scrape(p: Pipeline, text: string) {
  const out = p.transform(text);
  const series = new Map<string, number>();
  for (const line of out.body.toString().split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { series, stats: out.stats, text: out.body.toString() };
}

/** A counter family with one series per workspace: `values` maps workspace → value. */
function counterPayload(values: Map<string, number>, template = "t"): string {
  let text = "# TYPE agent_scripts_executed_total counter\n";
  for (const [w, v] of values) {
    text += `agent_scripts_executed_total{template_name="${template}",workspace_name="${w}"} ${v}\n`;
  }
  return text;
}

const PER_TEMPLATE =
  "aggregate: [{metrics: [agent_scripts_executed_total], by: [template_name]}]\n";
const OUT = 'agent_scripts_executed_total{template_name="t"}';

/**
 * The increase of the inputs between two scrapes, as counters count: the
 * difference, or the whole value after a reset or for a series not there before.
 */
function inputIncrease(before: Map<string, number>, after: Map<string, number>): number {
  let sum = 0;
  for (const [w, v] of after) {
    const last = before.get(w);
    sum += last === undefined || v < last ? v : v - last;
  }
  return sum;
}

describe("aggregated counters keep counter semantics", () => {
  it("workspaces appear, stop, reappear and reset: the total only grows, by the inputs' increases", () => {
    const { p } = pipeline(PER_TEMPLATE);
    const scrapes: [string, number][][] = [
      [
        ["a", 5],
        ["b", 7],
      ], // start: the current sum
      [
        ["a", 6],
        ["b", 7],
      ], // +1
      [["a", 6]], // b stops: no change (stateless would drop by 7)
      [
        ["a", 6],
        ["c", 2],
      ], // c starts with 2 already counted: +2
      [
        ["a", 6],
        ["b", 1],
        ["c", 2],
      ], // b starts again from 0 (agent restarted): +1
      [
        ["a", 3],
        ["b", 1],
        ["c", 4],
      ], // a's counter reset (to 3) and c +2: +5
      [
        ["a", 3],
        ["b", 1],
        ["c", 4],
      ], // nothing: +0
    ];
    const want = [12, 13, 13, 15, 16, 21, 21];
    let before = new Map<string, number>();
    let prev = Number.NaN;
    scrapes.forEach((values, k) => {
      const now = new Map(values);
      const got = scrape(p, counterPayload(now)).series.get(OUT);
      assert.equal(got, want[k], `scrape ${k}`);
      if (k > 0) assert.equal(got! - prev, inputIncrease(before, now), `increase at scrape ${k}`);
      prev = got!;
      if (values.length > 0) before = new Map([...before, ...now]);
    });
  });

  it("counter_mode: stateless is the per-scrape sum (and goes down when a workspace stops)", () => {
    const { p } = pipeline(
      "aggregate: [{metrics: [agent_scripts_executed_total], by: [template_name], counter_mode: stateless}]\n",
    );
    assert.equal(
      scrape(
        p,
        counterPayload(
          new Map([
            ["a", 5],
            ["b", 7],
          ]),
        ),
      ).series.get(OUT),
      12,
    );
    assert.equal(scrape(p, counterPayload(new Map([["a", 6]]))).series.get(OUT), 6);
  });

  it("gauges, max, min and count stay per-scrape values", () => {
    const { p } = pipeline(`aggregate:
  - {metrics: [g], by: [t]}
  - {metrics: [c], by: [t], op: max}
  - {metrics: [n], by: [t], op: count}
`);
    const payload = (ws: [string, number][]) =>
      ["# TYPE g gauge", "# TYPE c counter", "# TYPE n counter"]
        .map((type) => {
          const name = type.split(" ")[2]!;
          return `${type}\n${ws.map(([w, v]) => `${name}{t="x",w="${w}"} ${v}`).join("\n")}\n`;
        })
        .join("");
    scrape(
      p,
      payload([
        ["a", 5],
        ["b", 7],
      ]),
    );
    const r = scrape(p, payload([["a", 6]]));
    assert.equal(r.series.get('g{t="x"}'), 6);
    assert.equal(r.series.get('c{t="x"}'), 6);
    assert.equal(r.series.get('n{t="x"}'), 1);
    assert.match(r.text, /# TYPE n gauge/);
  });

  it("random churn: monotonic, and every increase is the sum of the inputs' increases", () => {
    const rand = rng(15);
    // Nothing is away long enough to be forgotten (see the next suite for that).
    const { p, clock } = pipeline(`${PER_TEMPLATE}counter_state_ttl: 24h\n`);
    const live = new Map<string, number>();
    let before = new Map<string, number>();
    let prev = -1;
    for (let k = 0; k < 200; k++) {
      clock.now += 15_000;
      for (let w = 0; w < 30; w++) {
        const name = `w${w}`;
        const r = rand();
        const v = live.get(name);
        if (v === undefined) {
          if (r < 0.1) live.set(name, Math.floor(rand() * 5)); // starts (may have counted already)
        } else if (r < 0.05) {
          live.delete(name); // stops
        } else if (r < 0.08) {
          live.set(name, Math.floor(rand() * 3)); // agent restarted: counts from 0 again
        } else {
          live.set(name, v + Math.floor(rand() * 4));
        }
      }
      const got = scrape(p, counterPayload(live)).series.get(OUT);
      if (live.size === 0) {
        assert.equal(got, undefined, "no series, no output (as PromQL's sum)");
        continue;
      }
      assert.ok(got! >= prev, `monotonic at scrape ${k}: ${got} after ${prev}`);
      if (prev >= 0) {
        assert.equal(got! - prev, inputIncrease(before, live), `increase at scrape ${k}`);
      }
      prev = got!;
      // A workspace seen before and back within the TTL resumes from its last value.
      before = new Map([...before, ...live]);
    }
  });

  it("a histogram's buckets, _sum and _count across the same churn", () => {
    const { p } = pipeline(
      "aggregate: [{metrics: [coderd_agents_first_connection_seconds], without: [workspace_name]}]\n",
    );
    // workspace → [bucket le=1, le=10, le=+Inf, sum] (count = +Inf bucket).
    const hist = (ws: [string, number[]][]) => {
      let text = "# TYPE coderd_agents_first_connection_seconds histogram\n";
      for (const [w, [b1, b10, inf, sum]] of ws) {
        const n = "coderd_agents_first_connection_seconds";
        text += `${n}_bucket{workspace_name="${w}",le="1"} ${b1}\n`;
        text += `${n}_bucket{workspace_name="${w}",le="10"} ${b10}\n`;
        text += `${n}_bucket{workspace_name="${w}",le="+Inf"} ${inf}\n`;
        text += `${n}_sum{workspace_name="${w}"} ${sum}\n`;
        text += `${n}_count{workspace_name="${w}"} ${inf}\n`;
      }
      return text;
    };
    const steps: [string, number[]][][] = [
      [
        ["a", [1, 2, 2, 3]],
        ["b", [0, 1, 1, 5]],
      ],
      [["a", [1, 3, 3, 8]]], // b goes; a +1 in le=10
      [
        ["a", [1, 3, 4, 30]],
        ["c", [1, 1, 1, 0.5]],
      ], // c new; a +1 in +Inf
      // a reset; b back after two scrapes away: le=1 +1, its _sum went down (a reset: +0.25)
      [
        ["a", [0, 1, 1, 2]],
        ["b", [1, 1, 1, 0.25]],
        ["c", [1, 1, 1, 0.5]],
      ],
    ];
    const want = [
      { le1: 1, le10: 3, inf: 3, sum: 8 },
      { le1: 1, le10: 4, inf: 4, sum: 13 },
      { le1: 2, le10: 5, inf: 6, sum: 35.5 },
      { le1: 3, le10: 6, inf: 7, sum: 37.75 },
    ];
    const n = "coderd_agents_first_connection_seconds";
    steps.forEach((ws, k) => {
      const s = scrape(p, hist(ws)).series;
      assert.deepEqual(
        {
          le1: s.get(`${n}_bucket{le="1.0"}`),
          le10: s.get(`${n}_bucket{le="10.0"}`),
          inf: s.get(`${n}_bucket{le="+Inf"}`),
          sum: s.get(`${n}_sum`),
        },
        want[k],
        `scrape ${k}`,
      );
      assert.equal(s.get(`${n}_count`), want[k]!.inf, `count at scrape ${k}`);
    });
  });

  it("summaries keep _sum and _count as counters", () => {
    const { p } = pipeline("aggregate: [{metrics: [s], without: [w]}]\n");
    const summary = (ws: [string, number, number][]) =>
      `# TYPE s summary\n${ws
        .map(
          ([w, sum, count]) =>
            `s{w="${w}",quantile="0.5"} 1\ns_sum{w="${w}"} ${sum}\ns_count{w="${w}"} ${count}\n`,
        )
        .join("")}`;
    scrape(
      p,
      summary([
        ["a", 2, 3],
        ["b", 4, 5],
      ]),
    );
    const r = scrape(p, summary([["b", 5, 6]]));
    assert.equal(r.series.get("s_sum"), 7);
    assert.equal(r.series.get("s_count"), 9);
  });

  it("series made equal by relabeling are still told apart", () => {
    // labeldrop makes the two series of w="a" one identity: they keep separate last values.
    const { p } = pipeline(`metric_relabel_configs:
  - {regex: x, action: labeldrop}
aggregate: [{metrics: [c], without: [w]}]
`);
    const payload = (x1: number, x2: number) =>
      `# TYPE c counter\nc{w="a",x="1"} ${x1}\nc{w="a",x="2"} ${x2}\n`;
    assert.equal(scrape(p, payload(10, 100)).series.get("c"), 110);
    assert.equal(scrape(p, payload(11, 100)).series.get("c"), 111);
    assert.equal(scrape(p, payload(12, 105)).series.get("c"), 117);
  });

  it("a value that is not a number is skipped; an increase is never negative", () => {
    const { p } = pipeline("aggregate: [{metrics: [c], without: [w]}]\n");
    const payload = (a: string, b: string) => `# TYPE c counter\nc{w="a"} ${a}\nc{w="b"} ${b}\n`;
    assert.equal(scrape(p, payload("5", "NaN")).series.get("c"), 5);
    assert.equal(scrape(p, payload("6", "2")).series.get("c"), 8);
    assert.equal(scrape(p, payload("7", "-3")).series.get("c"), 9);
  });
});

describe("counter state: lifetime and bounds", () => {
  it("a series unseen for counter_state_ttl (and 3 scrapes) is forgotten; sooner it resumes", () => {
    const { p, clock } = pipeline(`${PER_TEMPLATE}counter_state_ttl: 5m\n`);
    const at = (minutes: number, values: [string, number][]) => {
      clock.now = minutes * MINUTE;
      return scrape(p, counterPayload(new Map(values)));
    };
    assert.equal(
      at(0, [
        ["a", 10],
        ["b", 100],
      ]).series.get(OUT),
      110,
    );
    // b away for 4 minutes and back with its counter carried on (an agent that reconnected).
    at(1, [["a", 10]]);
    at(4, [["a", 10]]);
    assert.equal(
      at(5, [
        ["a", 10],
        ["b", 104],
      ]).series.get(OUT),
      114,
      "resumed: +4",
    );
    // b away for longer than the TTL: forgotten, so its value counts whole when it is back.
    for (let m = 6; m <= 12; m++) at(m, [["a", 10]]);
    const r = at(13, [
      ["a", 10],
      ["b", 105],
    ]);
    assert.equal(r.series.get(OUT), 219, "forgotten: a new series, +105");
    assert.equal(r.stats.counterStateSeries, 2);
  });

  it("state of gone series is dropped; the self-metric shows what is kept", () => {
    const { p, clock } = pipeline(`${PER_TEMPLATE}counter_state_ttl: 5m\n`);
    const ws = new Map<string, number>();
    for (let w = 0; w < 50; w++) ws.set(`w${w}`, w);
    assert.equal(scrape(p, counterPayload(ws)).stats.counterStateSeries, 50);
    const few = new Map([["w0", 1]]);
    let last = 0;
    for (let m = 1; m <= 10; m++) {
      clock.now = m * MINUTE;
      last = scrape(p, counterPayload(few)).stats.counterStateSeries;
    }
    assert.equal(last, 1);
  });

  it("a quick scraper still keeps state for the TTL; a slow one for 3 scrapes", () => {
    const { p, clock } = pipeline(`${PER_TEMPLATE}counter_state_ttl: 5m\n`);
    scrape(
      p,
      counterPayload(
        new Map([
          ["a", 1],
          ["b", 1],
        ]),
      ),
    );
    // Every 10 s for 4 minutes without b: kept.
    let kept = 0;
    for (let t = 10_000; t <= 4 * MINUTE; t += 10_000) {
      clock.now = t;
      kept = scrape(p, counterPayload(new Map([["a", 1]]))).stats.counterStateSeries;
    }
    assert.equal(kept, 2);
    // Scraped every 10 minutes: b survives the first two scrapes without it.
    const slow = pipeline(`${PER_TEMPLATE}counter_state_ttl: 5m\n`);
    scrape(
      slow.p,
      counterPayload(
        new Map([
          ["a", 1],
          ["b", 1],
        ]),
      ),
    );
    const series: number[] = [];
    for (let k = 1; k <= 4; k++) {
      slow.clock.now = k * 10 * MINUTE;
      series.push(scrape(slow.p, counterPayload(new Map([["a", 1]]))).stats.counterStateSeries);
    }
    assert.deepEqual(series, [2, 2, 1, 1]);
  });

  it("series_limit bounds the state: series past it are left out and counted as limit drops", () => {
    const { p } = pipeline(`${PER_TEMPLATE}series_limit: 3\n`);
    const ws = new Map([
      ["a", 1],
      ["b", 10],
      ["c", 100],
      ["d", 1000],
    ]);
    const r = scrape(p, counterPayload(ws));
    assert.equal(r.stats.counterStateSeries, 3);
    assert.equal(r.series.get(OUT), 111);
    assert.equal(r.stats.dropped.limit, 1);
    assert.equal(r.stats.seriesOut, 1);
  });

  it("a failed scrape changes nothing a later scrape would not have", () => {
    const { p } = pipeline(PER_TEMPLATE);
    scrape(
      p,
      counterPayload(
        new Map([
          ["a", 1],
          ["b", 2],
        ]),
      ),
    );
    const s = p.stream();
    s.write(Buffer.from(`${counterPayload(new Map([["a", 5]]))}agent_scripts_executed_total{`));
    assert.throws(() => s.end());
    assert.equal(
      scrape(
        p,
        counterPayload(
          new Map([
            ["a", 6],
            ["b", 3],
          ]),
        ),
      ).series.get(OUT),
      9,
    );
  });
});

describe("counter state across configuration reloads", () => {
  const next = (yaml: string, previous: Pipeline) => {
    const c = parseExporterConfig(yaml);
    if (!c.ok) throw new Error(JSON.stringify(c.errors));
    const p = new Pipeline(c.config);
    p.adoptCounterState(previous);
    return p;
  };

  it("the same rule and relabeling carry the totals on", () => {
    const { p } = pipeline(PER_TEMPLATE);
    scrape(
      p,
      counterPayload(
        new Map([
          ["a", 5],
          ["b", 7],
        ]),
      ),
    );
    scrape(p, counterPayload(new Map([["a", 6]]))); // 13, b gone
    // A reload that adds an unrelated rule keeps this one's state.
    const p2 = next(`${PER_TEMPLATE}drop_metrics: [go_*]\nseries_limit: 100\n`, p);
    assert.equal(scrape(p2, counterPayload(new Map([["a", 8]]))).series.get(OUT), 15);
  });

  it("a changed rule or changed relabeling starts afresh (as an exporter restart)", () => {
    const { p } = pipeline(PER_TEMPLATE);
    scrape(
      p,
      counterPayload(
        new Map([
          ["a", 5],
          ["b", 7],
        ]),
      ),
    );
    scrape(p, counterPayload(new Map([["a", 6]])));
    const p2 = next(
      `metric_relabel_configs: [{target_label: cluster, replacement: x}]\n${PER_TEMPLATE}`,
      p,
    );
    assert.equal(scrape(p2, counterPayload(new Map([["a", 8]]))).series.get(OUT), 8);
    const p3 = next(
      "aggregate: [{metrics: [agent_scripts_executed_total], by: [template_name, cluster]}]\n",
      p2,
    );
    assert.equal(scrape(p3, counterPayload(new Map([["a", 9]]))).series.get(OUT), 9);
  });
});
