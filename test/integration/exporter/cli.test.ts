// The CLI as a user runs it: `coder-metrics exporter` as a child process
// (flags from argv and env, JSON logs, SIGTERM) and `coder-metrics relabel`
// as a stdin → stdout filter.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type CoderStandin, startCoderStandin } from "../../support/coder-standin.ts";
import { type PromEvent, promrefBatch } from "../../support/promref.ts";

const CLI = join(import.meta.dirname, "../../../controller/cli.ts");

function run(args: string[], stdin: string, env: NodeJS.ProcessEnv = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe("coder-metrics relabel", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "relabel-cli-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("transforms stdin to stdout", async () => {
    const rules = join(dir, "rules.yaml");
    await writeFile(
      rules,
      "- source_labels: [__name__]\n  regex: go_.*\n  action: drop\n- {action: labeldrop, regex: username}\n",
    );
    const r = await run(
      ["relabel", "--config", rules],
      'go_goroutines 5\ncoderd_agents_up{username="u",t="a"} 1\n',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'coderd_agents_up{t="a"} 1\n');
  });

  it("exits non-zero naming the bad rule", async () => {
    const rules = join(dir, "bad.yaml");
    await writeFile(rules, "- {action: drop, regex: x}\n- {action: drop, regex: '(?=x)'}\n");
    const r = await run(["relabel", "--config", rules], "a 1\n");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\[1\]\.regex: invalid RE2/);
    assert.equal(r.stdout, "");
  });

  it("exits non-zero on malformed input with the line", async () => {
    const rules = join(dir, "ok.yaml");
    await writeFile(rules, "[]\n");
    const r = await run(["relabel", "--config", rules], "a 1\nb{c=d} 2\n");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /malformed input: line 2: /);
    assert.equal(r.stdout, "");
  });

  describe("gives what Prometheus 3 stores (promref) for the cases issue #13 names", () => {
    const CASES: { name: string; rules: unknown[]; payload: string }[] = [
      {
        name: "1: regex . matches a newline (^(?s:…)$)",
        rules: [{ source_labels: ["a"], regex: "x.y", action: "keep" }],
        payload: 'm{a="x\\ny"} 1\nm{a="x\ny"} 2\nm{a="xzy"} 3\nm{a="xy"} 4\n',
      },
      {
        name: "2: duplicate label sets after relabeling, the first wins",
        rules: [
          { regex: "d", action: "labeldrop" },
          { target_label: "b", replacement: "1" },
        ],
        payload: 'm{b="1",c="2"} 1\nm{c="2",d="x"} 2\n',
      },
      {
        name: "3: UTF-8 names in the payload and in the rules",
        rules: [
          {
            source_labels: ["http.route"],
            regex: "/api/(.*)",
            target_label: "api.version",
            replacement: "$1",
          },
        ],
        payload: '{"coder.http.requests", "http.route"="/api/v2"} 7\n',
      },
      {
        name: "4: empty label values, in the input and made by a rule",
        rules: [{ source_labels: ["b"], regex: "drop-me", target_label: "b", replacement: "" }],
        payload: 'm{a="",b="drop-me"} 1\nm{a="",b="keep"} 2\nm 3\n',
      },
      {
        name: "5: a series left without __name__ fails the whole scrape",
        rules: [{ regex: "a", action: "labelkeep" }],
        payload: 'm{a="1"} 1\n',
      },
    ];
    for (const c of CASES) {
      it(c.name, async () => {
        const rules = join(dir, "issue13.yaml");
        await writeFile(rules, JSON.stringify(c.rules));
        const [want] = promrefBatch([
          { mode: "relabel", rules: JSON.stringify(c.rules), payload: c.payload },
        ]);
        const result = want!.at(-1)!;
        assert.ok(result.kind === "result");
        const r = await run(["relabel", "--config", rules], c.payload);
        if (result.error !== null) {
          assert.equal(r.code, 1, r.stdout);
          assert.match(r.stderr, /Prometheus fails the whole scrape/);
          assert.equal(r.stdout, "");
          return;
        }
        assert.equal(r.code, 0, r.stderr);
        const stored = (events: PromEvent[]) =>
          events
            .filter((e) => e.kind === "series")
            .map((e) => JSON.stringify(e))
            .sort();
        const [served] = promrefBatch([{ mode: "parse", payload: r.stdout }]);
        assert.deepEqual(stored(served!), stored(want!), r.stdout);
      });
    }

    it("3, to a scraper without UTF-8 support: --escaping underscores", async () => {
      const rules = join(dir, "issue13-3.yaml");
      await writeFile(rules, "[]\n");
      const r = await run(
        ["relabel", "--config", rules, "--escaping", "underscores"],
        '{"coder.http.requests", "http.route"="/api/v2"} 7\n',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'coder_http_requests{http_route="/api/v2"} 7\n');
    });
  });

  it("usage errors exit 2", async () => {
    const r = await run(["relabel"], "");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--config is required/);
  });
});

describe("coder-metrics exporter (child process)", () => {
  let standin: CoderStandin;
  before(async () => {
    standin = await startCoderStandin({ workspaces: 5 });
  });
  after(() => standin.close());

  it("starts, serves, logs JSON and stops on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        "exporter",
        "--upstream",
        standin.url,
        "--listen=127.0.0.1:0",
        "--config",
        "/nonexistent/exporter.yaml",
      ],
      { env: { ...process.env, CODER_METRICS_EXPORTER_SCRAPE_TIMEOUT: "3s" } },
    );
    const lines: Record<string, unknown>[] = [];
    let buf = "";
    const listening = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line; got ${buf}`)), 15_000);
      child.stderr.on("data", (d: Buffer) => {
        buf += d.toString();
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          lines.push(line);
          buf = buf.slice(nl + 1);
          if (line.msg === "listening") {
            clearTimeout(timer);
            resolve(String(line.address));
          }
          nl = buf.indexOf("\n");
        }
      });
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on("exit", (code) => resolve(code)),
    );
    try {
      const address = await listening;
      const res = await fetch(`http://${address}/metrics`);
      const text = await res.text();
      assert.equal(res.status, 200);
      assert.match(text, /^coderd_agents_up\{/m, "identity config: served unchanged");
      assert.match(text, /^coder_metrics_exporter_upstream_up 1$/m);
      assert.match(
        text,
        /^coder_metrics_exporter_process_cpu_seconds_total /m,
        "prefixed process metrics",
      );
      assert.ok(
        lines.some(
          (l) => l.msg === "configuration file not found; serving upstream metrics unchanged",
        ),
      );
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0);
    assert.ok(lines.some((l) => l.msg === "stopped"));
    for (const l of lines) assert.equal(typeof l.ts, "string");
  });

  it("rejects an unknown flag with usage and exit 2", async () => {
    const r = await run(["exporter", "--nope"], "");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown flag --nope/);
    assert.match(r.stderr, /CODER_METRICS_EXPORTER_UPSTREAM/);
  });
});
