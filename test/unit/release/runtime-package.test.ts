// What the runtime package holds — dist/, which the Dockerfile copies into the
// image — is the controller's modules and nothing else. The build tools (CRD
// printer, metrics reference, manifests generator) and the Coder fixture live
// in test/ and must stay out of it: this builds exactly as `npm run build`
// does, into a temporary folder, and lists what came out.
// (test/tools/image.sh checks the built image's /app the same way.)
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { repoRoot } from "../../support/helm.ts";

const generators = /print-crd|metrics-reference|manifests|fixture|stand-?in|\.test\.|\.bench\./;

const out = mkdtempSync(join(tmpdir(), "coder-metrics-dist-"));
after(() => rmSync(out, { recursive: true, force: true }));

function build(): string[] {
  const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", out], {
    cwd: repoRoot,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `tsc -p tsconfig.build.json: ${r.stdout}${r.stderr}`);
  return (readdirSync(out, { recursive: true }) as string[]).filter((f) => /\.js$/.test(f)).sort();
}

describe("release: the runtime package", () => {
  test("npm run build emits the controller's modules only: no generator, fixture or test", () => {
    const files = build();
    assert.ok(files.includes(join("controller", "cli.js")), "the image's entrypoint");
    const outside = files.filter((f) => !f.startsWith("controller/"));
    assert.deepEqual(outside, [], "everything under dist/controller/");
    assert.deepEqual(
      files.filter((f) => generators.test(f)),
      [],
      "no build tool, fixture, test or bench",
    );
    // One output per controller source: nothing pulled in from test/ by an import.
    for (const f of files) {
      assert.ok(existsSync(join(repoRoot, f.replace(/\.js$/, ".ts"))), `${f} from a source`);
    }
  });

  test("tsconfig.build.json, package.json and the Dockerfile take controller/ and nothing of test/", () => {
    const config = JSON.parse(readFileSync(join(repoRoot, "tsconfig.build.json"), "utf8")) as {
      include: string[];
      exclude?: string[];
    };
    assert.deepEqual(config.include, ["controller/**/*.ts"]);
    assert.ok(config.exclude?.includes("controller/**/*.test.ts"));
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
      files: string[];
      bin: Record<string, string>;
    };
    assert.deepEqual(pkg.files, ["dist/controller"]);
    assert.deepEqual(Object.values(pkg.bin), ["dist/controller/cli.js"]);
    // The build stage's COPY sources: the manifests, the tsconfigs, controller/.
    const copies = readFileSync(join(repoRoot, "Dockerfile"), "utf8")
      .split("\n")
      .filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l))
      .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
    assert.deepEqual(copies.sort(), [
      "controller",
      "package-lock.json",
      "package.json",
      "tsconfig.build.json",
      "tsconfig.json",
    ]);
  });
});
