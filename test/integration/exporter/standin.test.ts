// The coderd stand-in as the e2e suite runs it: a script honouring coderd's
// CODER_PROMETHEUS_* environment.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";

const SCRIPT = join(import.meta.dirname, "../../support/coder-standin.ts");

function start(args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env } });
  let stderr = "";
  const firstLine = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no output: ${stderr}`)), 15_000);
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes("\n")) {
        clearTimeout(timer);
        resolve(stderr.split("\n")[0]!);
      }
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { child, firstLine, exited };
}

describe("coder stand-in script", () => {
  it("with --require-env and no CODER_PROMETHEUS_ENABLE it serves nothing", async () => {
    const s = start(["--require-env", "--address", "127.0.0.1:0"], { CODER_PROMETHEUS_ENABLE: "" });
    assert.match(await s.firstLine, /CODER_PROMETHEUS_ENABLE is not true/);
    s.child.kill("SIGTERM");
    assert.equal(await s.exited, 0);
  });

  it("with CODER_PROMETHEUS_ENABLE=true it binds CODER_PROMETHEUS_ADDRESS and serves the fixture", async () => {
    const s = start(["--require-env", "--address", "127.0.0.1:1", "--workspaces", "4"], {
      CODER_PROMETHEUS_ENABLE: "true",
      CODER_PROMETHEUS_ADDRESS: "127.0.0.1:0",
    });
    try {
      const line = JSON.parse(await s.firstLine) as { url: string };
      const res = await fetch(line.url);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.equal(text.match(/^coderd_agents_up\{/gm)?.length, 4);
    } finally {
      s.child.kill("SIGTERM");
    }
    assert.equal(await s.exited, 0);
  });
});
