// How the e2e stack (and `make demo`) runs coder-metrics: from the image users
// run — `make image` builds coder-metrics:<package.json version> into podman's
// storage, and the process kubelet runs the chart's
// ghcr.io/coder-metrics/coder-metrics:<tag> as localhost/coder-metrics:<tag> —
// or, only where that is impossible (no root: no podman, no image), from the
// sources, with a loud warning. Under CI=true that fallback is an error.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { ContainerRuntimeOptions } from "./kubelet.ts";
import { inspectImage } from "./podman.ts";
import { repoRoot } from "../support/helm.ts";

export const chartImageRepository = "ghcr.io/coder-metrics/coder-metrics";
export const localImageRepository = "localhost/coder-metrics";

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string })
    .version;
}

/** The image `make image` builds for this checkout. */
export function localImage(): string {
  return `${localImageRepository}:${packageVersion()}`;
}

function warn(lines: string[]): void {
  const bar = "!".repeat(78);
  process.stderr.write(`\n${bar}\n${lines.map((l) => `!! ${l}`).join("\n")}\n${bar}\n\n`);
}

/** The newest modification time of what the image is built from. */
function newestSource(): { path: string; mtime: number } {
  let newest = { path: "", mtime: 0 };
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else if (stat.mtimeMs > newest.mtime) {
      newest = { path, mtime: stat.mtimeMs };
    }
  };
  for (const path of ["controller", "package.json", "package-lock.json", "Dockerfile"])
    visit(join(repoRoot, path));
  return newest;
}

/**
 * The kubelet's container runtime for this run, or undefined to run from the
 * sources. Throws when the image should be used and cannot be.
 */
export async function containerRuntime(): Promise<ContainerRuntimeOptions | undefined> {
  const ci = process.env.CI === "true";
  const fallback = (why: string): undefined => {
    if (ci) {
      throw new Error(
        `e2e: ${why}; under CI=true the e2e runs the image (make image), never the sources`,
      );
    }
    warn([
      `e2e: ${why}.`,
      "Running coder-metrics FROM THE SOURCES (node controller/cli.ts), NOT the image users run:",
      "this run does not test the built artifact (dist/, production node_modules, the",
      "image's NODE_OPTIONS, uid 65532, read-only root). As root, `make image` then `make e2e`.",
    ]);
    return undefined;
  };
  if (process.env.E2E_RUNTIME === "process") return fallback("E2E_RUNTIME=process");
  if (process.getuid?.() !== 0) return fallback("not root: podman and `make image` need root");
  const image = localImage();
  // make e2e passes the id of the build it has just made (E2E_IMAGE_ID): the name can be
  // retagged by a build from another checkout at any time (one image storage per machine).
  const built = process.env.E2E_IMAGE_ID || undefined;
  const facts = await inspectImage(built ?? image);
  if (facts === undefined) {
    throw new Error(
      `e2e: the image ${built ?? image} is not in podman's storage: run \`make image\` (make e2e does)`,
    );
  }
  const source = newestSource();
  if (built === undefined && source.mtime > facts.created.getTime()) {
    warn([
      `e2e: ${image} (built ${facts.created.toISOString()}) is older than`,
      `${source.path.slice(repoRoot.length + 1)}: the run tests that older build. \`make image\` rebuilds it.`,
    ]);
  }
  process.stderr.write(
    `e2e: coder-metrics runs from the image ${image} (${facts.id.slice(0, 12)})\n`,
  );
  // Pinned for the run: :<version> and :dev (make image tags each build both ways).
  const dev = `${localImageRepository}:dev`;
  const devId = built !== undefined ? facts.id : (await inspectImage(dev))?.id;
  return {
    localRepositories: { [chartImageRepository]: localImageRepository },
    pinned: { [image]: facts.id, ...(devId !== undefined ? { [dev]: devId } : {}) },
  };
}
