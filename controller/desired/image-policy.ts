// Which images the controller may put into Coder's Pod as the exporter sidecar.
// Whoever may create a CoderMetrics can set spec.exporter.image; without this
// check that is an arbitrary container beside coderd, with its network, its
// volumes and its view of coderd's loopback. The controller's own exporter
// image repository is always allowed; --allowed-exporter-images adds more.
//
// Image references are read the way the container runtime reads them
// (github.com/distribution/reference: its grammar, and ParseNormalizedNamed's
// "familiar" names: `busybox` is docker.io/library/busybox), so a pattern
// cannot be dodged by spelling the same image another way.

/** A parsed image reference; `name` is normalized (registry/path, docker.io filled in). */
export interface ImageReference {
  name: string;
  tag?: string;
  digest?: string;
}

// distribution/reference's grammar (regexp.go).
const pathComponent = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const domain = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const tagPattern = "[\\w][\\w.-]{0,127}";
const digestPattern = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const referenceRe = new RegExp(
  `^((?:${domain}/)?${remoteName})(?::(${tagPattern}))?(?:@(${digestPattern}))?$`,
);
const nameTotalLengthMax = 255;

/** distribution/reference's splitDockerDomain: the registry, or docker.io (and library/). */
function normalizeName(name: string): string {
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  const hasDomain =
    slash >= 0 && (/[.:]/.test(first) || first === "localhost" || first.toLowerCase() !== first);
  let registry = hasDomain ? first : "docker.io";
  let rest = hasDomain ? name.slice(slash + 1) : name;
  if (registry === "index.docker.io") registry = "docker.io";
  if (registry === "docker.io" && !rest.includes("/")) rest = `library/${rest}`;
  return `${registry}/${rest}`;
}

/** Parses an image reference as a container runtime would; undefined when it is not one. */
export function parseImageReference(image: string): ImageReference | undefined {
  const match = referenceRe.exec(image);
  if (match === null) return undefined;
  const [, name = "", tag, digest] = match;
  if (name.length > nameTotalLengthMax) return undefined;
  return {
    name: normalizeName(name),
    ...(tag !== undefined ? { tag } : {}),
    ...(digest !== undefined ? { digest } : {}),
  };
}

function referenceString(ref: ImageReference): string {
  return `${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

export type ImagePattern =
  | { kind: "repository"; text: string; name: string }
  | { kind: "exact"; text: string; ref: ImageReference }
  | { kind: "prefix"; text: string; prefix: string }
  | { kind: "glob"; text: string; re: RegExp };

function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (c === "*") {
      source += "[^/]*";
    } else {
      source += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    }
  }
  return new RegExp(`^${source}$`);
}

/**
 * One allow-list entry:
 * - `registry/path/name` — that repository, any tag or digest;
 * - `registry/path/name:tag` or `…@sha256:…` — exactly that image;
 * - `registry/path/` (ending in /) — every repository under that path;
 * - a glob with `*` (any characters but /) or `**` (anything), matched against
 *   the normalized reference (`docker.io/library/busybox:1.36`), e.g.
 *   `registry.example.com/team/*`, `ghcr.io/coder-metrics/coder-metrics:v1.*`.
 * Throws on an entry that is none of these.
 */
export function parseImagePattern(text: string): ImagePattern {
  const entry = text.trim();
  if (entry === "") throw new Error("empty image pattern");
  if (entry.includes("*")) return { kind: "glob", text: entry, re: globToRegExp(entry) };
  if (entry.endsWith("/")) {
    // Two more path components, so docker.io/ stays docker.io/ (not docker.io/library/).
    const probe = parseImageReference(`${entry}x/y`);
    if (probe === undefined || probe.tag !== undefined || probe.digest !== undefined)
      throw new Error(`"${entry}" is not a registry or repository path`);
    return { kind: "prefix", text: entry, prefix: probe.name.slice(0, -"x/y".length) };
  }
  const ref = parseImageReference(entry);
  if (ref === undefined) throw new Error(`"${entry}" is not an image reference`);
  if (ref.tag === undefined && ref.digest === undefined)
    return { kind: "repository", text: entry, name: ref.name };
  return { kind: "exact", text: entry, ref };
}

function patternMatches(pattern: ImagePattern, ref: ImageReference): boolean {
  switch (pattern.kind) {
    case "repository":
      return ref.name === pattern.name;
    case "prefix":
      return ref.name.startsWith(pattern.prefix);
    case "exact":
      return (
        ref.name === pattern.ref.name &&
        ref.tag === pattern.ref.tag &&
        ref.digest === pattern.ref.digest
      );
    case "glob":
      return pattern.re.test(referenceString(ref));
  }
}

/** The repository of an image (what the default allow-list admits): `repo:tag` → `repo`. */
export function imageRepository(image: string): string | undefined {
  return parseImageReference(image)?.name;
}

export interface ImagePolicy {
  /** The entries as given, for messages. */
  entries: string[];
  patterns: ImagePattern[];
}

/** The controller's own exporter image's repository, plus the configured patterns. */
export function imagePolicy(exporterImage: string, allowed: readonly string[]): ImagePolicy {
  const own = imageRepository(exporterImage);
  const entries = [...(own !== undefined ? [own] : []), ...allowed.map((a) => a.trim())].filter(
    (e, i, all) => e !== "" && all.indexOf(e) === i,
  );
  return { entries, patterns: entries.map(parseImagePattern) };
}

export type ImageDecision = { ok: true; image: string } | { ok: false; message: string };

/** May `image` be injected? The message says why not and what to do. */
export function checkImage(image: string, policy: ImagePolicy): ImageDecision {
  const ref = parseImageReference(image);
  if (ref === undefined) {
    return { ok: false, message: `spec.exporter.image "${image}" is not a valid image reference` };
  }
  if (policy.patterns.some((p) => patternMatches(p, ref))) return { ok: true, image };
  return {
    ok: false,
    message: `spec.exporter.image "${image}" is not in the controller's allowed exporter images (${policy.entries.join(", ") || "none"}); the Deployment was left untouched. Use an allowed image, or have the controller's operator add it to --allowed-exporter-images (chart value exporter.allowedImages)`,
  };
}

const policies = new Map<string, ImagePolicy>();

/** The exporter image a CoderMetrics asks for, checked; ok without a sidecar. */
export function checkExporterImage(
  spec: { exporter: { enabled: boolean; image?: string | undefined } },
  exporterImage: string,
  allowed: readonly string[],
): ImageDecision {
  const image = spec.exporter.image ?? exporterImage;
  if (!spec.exporter.enabled) return { ok: true, image };
  const key = JSON.stringify([exporterImage, allowed]);
  let policy = policies.get(key);
  if (policy === undefined) {
    policy = imagePolicy(exporterImage, allowed);
    policies.set(key, policy);
  }
  return checkImage(image, policy);
}
