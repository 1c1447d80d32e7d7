// One version for everything a release ships: package.json's version is the
// chart's appVersion (the image tag the chart deploys by default) and the
// chart's version, and .github/workflows/release.yaml refuses a tag that says
// otherwise. The check step's script is run here as the workflow runs it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { chartDir, find, renderChart, repoRoot } from "../../support/helm.ts";

const imageRepository = "ghcr.io/coder-metrics/coder-metrics";

const packageVersion = (
  JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }
).version;
const chartYaml = readFileSync(join(chartDir, "Chart.yaml"), "utf8");
const chart = parse(chartYaml) as {
  version: string;
  appVersion: string;
  annotations?: Record<string, string>;
};
const values = parse(readFileSync(join(chartDir, "values.yaml"), "utf8")) as {
  image: { repository: string; tag: string; digest: string };
};

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
}
interface Job {
  needs?: string | string[];
  steps: Step[];
  outputs?: Record<string, string>;
}
interface Workflow {
  on: { push?: { tags?: string[] } };
  jobs: Record<string, Job>;
}
const release = parse(
  readFileSync(join(repoRoot, ".github/workflows/release.yaml"), "utf8"),
) as Workflow;

function needsOf(job: Job): string[] {
  return job.needs === undefined ? [] : [job.needs].flat();
}

/** The job holding the version check and the step itself. */
function versionCheck(): { jobName: string; step: Step } {
  for (const [jobName, job] of Object.entries(release.jobs)) {
    const step = job.steps.find((s) => s.id === "check-versions");
    if (step) return { jobName, step };
  }
  assert.fail("release.yaml has no step with id check-versions");
}

const scratch: string[] = [];
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs the check step's script as GitHub Actions runs a `run:` step (bash -e
 * -o pipefail), in `cwd`, for the tag given.
 */
function runCheck(tag: string, cwd = repoRoot): { status: number; output: string; out: string } {
  const { step } = versionCheck();
  const dir = mkdtempSync(join(tmpdir(), "cm-release-check-"));
  scratch.push(dir);
  const outputFile = join(dir, "github-output");
  writeFileSync(outputFile, "");
  const result = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", step.run!], {
    cwd,
    encoding: "utf8",
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
      GITHUB_REF_NAME: tag,
      GITHUB_OUTPUT: outputFile,
    },
  });
  return {
    status: result.status ?? -1,
    output: `${result.stdout}${result.stderr}`,
    out: readFileSync(outputFile, "utf8"),
  };
}

/** A copy of package.json and Chart.yaml with one of them edited. */
function treeWith(edit: { packageVersion?: string; chartYaml?: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "cm-release-tree-"));
  scratch.push(dir);
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
  if (edit.packageVersion) pkg.version = edit.packageVersion;
  writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
  mkdirSync(join(dir, "charts/coder-metrics"), { recursive: true });
  if (edit.chartYaml) writeFileSync(join(dir, "charts/coder-metrics/Chart.yaml"), edit.chartYaml);
  else cpSync(join(chartDir, "Chart.yaml"), join(dir, "charts/coder-metrics/Chart.yaml"));
  return dir;
}

describe("release: one version in package.json and the chart", () => {
  test("Chart.yaml appVersion is package.json's version", () => {
    assert.equal(chart.appVersion, packageVersion);
  });

  test("Chart.yaml version is package.json's version (release.yaml checks the tag against it)", () => {
    assert.equal(chart.version, packageVersion);
  });

  test("the Artifact Hub image annotation names the appVersion image", () => {
    const images = parse(chart.annotations?.["artifacthub.io/images"] ?? "[]") as {
      image: string;
    }[];
    assert.deepEqual(
      images.map((i) => i.image),
      [`${imageRepository}:${chart.appVersion}`],
    );
  });

  test("the chart deploys ghcr.io/coder-metrics/coder-metrics, tag defaulting to appVersion", () => {
    assert.equal(values.image.repository, imageRepository);
    assert.equal(values.image.tag, "");
    assert.equal(values.image.digest, "");
    const deployment = find(renderChart(), "Deployment")[0];
    assert.ok(deployment, "the chart renders a Deployment");
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.image, `${imageRepository}:${chart.appVersion}`);
    // The injected exporter sidecar defaults to the same image.
    assert.ok(
      (container.args as string[]).includes(
        `--exporter-image=${imageRepository}:${chart.appVersion}`,
      ),
      `controller args: ${JSON.stringify(container.args)}`,
    );
  });
});

describe("release.yaml checks the tag against package.json and Chart.yaml", () => {
  test("it runs on v* tags, and every other job waits for the check", () => {
    assert.ok(release.on.push?.tags?.includes("v*"), "on.push.tags includes v*");
    const { jobName } = versionCheck();
    // Every job reaches the check job through `needs` (directly or not).
    const reaches = (name: string, seen = new Set<string>()): boolean => {
      if (name === jobName) return true;
      if (seen.has(name)) return false;
      seen.add(name);
      const job = release.jobs[name];
      assert.ok(job, `needs names an unknown job ${name}`);
      return needsOf(job).some((n) => reaches(n, seen));
    };
    for (const name of Object.keys(release.jobs)) {
      assert.ok(reaches(name), `job ${name} does not wait for ${jobName}`);
    }
    // The version the other jobs publish is the checked one.
    assert.match(
      release.jobs[jobName]!.outputs?.version ?? "",
      /steps\.check-versions\.outputs\.version/,
    );
  });

  test("the check step reads package.json, and Chart.yaml's appVersion and version", () => {
    const run = versionCheck().step.run ?? "";
    for (const needle of ["GITHUB_REF_NAME", "package.json", "Chart.yaml", "appVersion"]) {
      assert.ok(run.includes(needle), `the check step does not mention ${needle}`);
    }
  });

  test("the tag of this version passes and gives the version to the other jobs", () => {
    const r = runCheck(`v${packageVersion}`);
    assert.equal(r.status, 0, r.output);
    assert.equal(r.out, `version=${packageVersion}\n`);
  });

  test("another tag fails, naming each file that disagrees", () => {
    const r = runCheck("v99.0.0");
    assert.notEqual(r.status, 0);
    assert.match(r.output, /package\.json version is '/);
    assert.match(r.output, /Chart\.yaml appVersion is '/);
    assert.match(r.output, /Chart\.yaml version is '/);
    assert.equal(r.out, "");
  });

  test("a Chart.yaml appVersion behind package.json fails, naming appVersion only", () => {
    const dir = treeWith({
      chartYaml: chartYaml.replace(/^appVersion:.*$/m, 'appVersion: "0.0.0-old"'),
    });
    const r = runCheck(`v${packageVersion}`, dir);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /Chart\.yaml appVersion is '0\.0\.0-old'/);
    assert.doesNotMatch(r.output, /package\.json version is/);
    assert.doesNotMatch(r.output, /Chart\.yaml version is/);
  });

  test("a package.json ahead of the chart fails, naming package.json", () => {
    const dir = treeWith({ packageVersion: "9.9.9" });
    const r = runCheck(`v${packageVersion}`, dir);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /package\.json version is '9\.9\.9'/);
  });

  test("a chart version written with quotes or a comment is read as the same version", () => {
    const dir = treeWith({
      chartYaml: chartYaml
        .replace(/^version:.*$/m, `version: '${packageVersion}' # the chart's version`)
        .replace(/^appVersion:.*$/m, `appVersion: ${packageVersion}`),
    });
    const r = runCheck(`v${packageVersion}`, dir);
    assert.equal(r.status, 0, r.output);
  });
});
