// Runs the helm binary the Makefile builds (test/tools/go-tools.sh helm) against
// charts/coder-metrics, for render tests, the manifests generator and installs.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse, parseAllDocuments } from "yaml";

export const repoRoot = resolve(import.meta.dirname, "../..");
export const chartDir = join(repoRoot, "charts/coder-metrics");
/**
 * helm built from source defaults .Capabilities.KubeVersion to v1.20, below the
 * chart's kubeVersion; offline renders claim the oldest version the chart supports.
 */
export const renderKubeVersion = "1.29.0";

let helmPath: string | undefined;

export function helmBinary(): string {
  helmPath ??= join(
    execFileSync(join(repoRoot, "test/tools/go-tools.sh"), ["helm"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim(),
    "helm",
  );
  return helmPath;
}

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; never throws on a non-zero exit (tests assert on failures too). */
export function helm(args: string[], options: { input?: string } = {}): HelmResult {
  const result = spawnSync(helmBinary(), args, {
    encoding: "utf8",
    input: options.input ?? "",
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, HELM_CACHE_HOME: join(repoRoot, ".cache/helm/cache") },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Like helm(), but throws with helm's stderr when it fails. */
export function helmOk(args: string[], options: { input?: string } = {}): string {
  const result = helm(args, options);
  if (result.status !== 0)
    throw new Error(`helm ${args.join(" ")} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

export interface PackagedChart {
  /** The chart archive, coder-metrics-<version>.tgz, as `helm install` takes it. */
  path: string;
  version: string;
  remove(): void;
}

/**
 * `helm package` of charts/coder-metrics into a temporary folder: what users
 * install. `withoutKubeVersion`: packaged from a copy without the kubeVersion
 * constraint, for an API server built without version stamping (v0.0.0-master,
 * which no constraint accepts).
 */
export function packageChart(options: { withoutKubeVersion?: boolean } = {}): PackagedChart {
  const dir = mkdtempSync(join(tmpdir(), "coder-metrics-chart-"));
  let source = chartDir;
  if (options.withoutKubeVersion) {
    source = join(dir, "coder-metrics");
    cpSync(chartDir, source, { recursive: true });
    const chartYaml = join(source, "Chart.yaml");
    writeFileSync(chartYaml, readFileSync(chartYaml, "utf8").replace(/^kubeVersion: .*$/m, ""));
  }
  const { version } = parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8")) as {
    version: string;
  };
  helmOk(["package", source, "--destination", dir]);
  return {
    path: join(dir, `coder-metrics-${version}.tgz`),
    version,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Does this API server's /version (gitVersion) need `withoutKubeVersion`? */
export function unstampedServer(gitVersion: string | undefined): boolean {
  return gitVersion?.startsWith("v0.0.0") ?? false;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped; tests narrow them
  [key: string]: any;
}

export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]?.message}`);
      return doc.toJS() as KubeObject | null;
    })
    .filter((o): o is KubeObject => o !== null && typeof o === "object");
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values as a document (passed with -f -). */
  values?: Record<string, unknown>;
  includeCrds?: boolean;
}

export function templateArgs(options: RenderOptions = {}): string[] {
  return [
    "template",
    options.release ?? "cm",
    chartDir,
    "--namespace",
    options.namespace ?? "coder-metrics",
    "--kube-version",
    renderKubeVersion,
    ...(options.includeCrds ? ["--include-crds"] : []),
    ...(options.values ? ["--values", "-"] : []),
  ];
}

/** `helm template` of the chart as objects; throws when rendering fails. */
export function renderChart(options: RenderOptions = {}): KubeObject[] {
  return parseManifests(
    helmOk(templateArgs(options), { input: JSON.stringify(options.values ?? {}) }),
  );
}

/** `helm template` expected to fail: returns helm's error output. */
export function renderError(values: Record<string, unknown>): string {
  const result = helm(templateArgs({ values }), { input: JSON.stringify(values) });
  if (result.status === 0)
    throw new Error(`expected helm template to fail for ${JSON.stringify(values)}`);
  return result.stderr;
}

export function find(objects: KubeObject[], kind: string, name?: string): KubeObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}
