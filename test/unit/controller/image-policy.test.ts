// Which exporter images the controller injects: its own repository, plus
// --allowed-exporter-images (repositories, exact images, path prefixes, globs),
// with image names read as the container runtime reads them.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  checkExporterImage,
  checkImage,
  imagePolicy,
  imageRepository,
  parseImagePattern,
  parseImageReference,
} from "../../../controller/desired/image-policy.ts";

const own = "ghcr.io/coder-metrics/coder-metrics:0.1.0";
const digest = `sha256:${"a".repeat(64)}`;

describe("image references (distribution/reference)", () => {
  const cases: Array<[string, ReturnType<typeof parseImageReference>]> = [
    ["busybox", { name: "docker.io/library/busybox" }],
    ["busybox:1.36", { name: "docker.io/library/busybox", tag: "1.36" }],
    ["index.docker.io/library/busybox", { name: "docker.io/library/busybox" }],
    ["me/app", { name: "docker.io/me/app" }],
    ["localhost/app", { name: "localhost/app" }],
    ["localhost:5000/app:v1", { name: "localhost:5000/app", tag: "v1" }],
    ["Registry/app", { name: "Registry/app" }],
    [
      `ghcr.io/coder-metrics/coder-metrics:0.1.0@${digest}`,
      { name: "ghcr.io/coder-metrics/coder-metrics", tag: "0.1.0", digest },
    ],
    [`ghcr.io/a/b@${digest}`, { name: "ghcr.io/a/b", digest }],
  ];
  for (const [image, want] of cases) {
    test(`${image}`, () => assert.deepEqual(parseImageReference(image), want));
  }
  for (const bad of [
    "",
    "lower/Upper",
    "a//b",
    "ghcr.io/a/../b",
    "a:b:c",
    "a@sha256:short",
    " x",
  ]) {
    test(`not a reference: ${JSON.stringify(bad)}`, () =>
      assert.equal(parseImageReference(bad), undefined));
  }
  test("the repository of an image", () => {
    assert.equal(imageRepository(own), "ghcr.io/coder-metrics/coder-metrics");
  });
});

describe("allow-list", () => {
  const allowed = (image: string, entries: string[] = []) =>
    checkImage(image, imagePolicy(own, entries)).ok;

  test("default: any tag or digest of the controller's own repository", () => {
    assert.equal(allowed("ghcr.io/coder-metrics/coder-metrics:0.2.0"), true);
    assert.equal(allowed(`ghcr.io/coder-metrics/coder-metrics@${digest}`), true);
    assert.equal(allowed("ghcr.io/coder-metrics/coder-metrics"), true);
  });

  test("default: nothing else, not even a look-alike name", () => {
    for (const image of [
      "busybox",
      "ghcr.io/coder-metrics/coder-metrics-evil:1",
      "ghcr.io/coder-metrics/coder-metrics/sub:1",
      "ghcr.io/coder-metricsx/coder-metrics:1",
      "evil.example/ghcr.io/coder-metrics/coder-metrics:1",
    ]) {
      assert.equal(allowed(image), false, image);
    }
  });

  test("a repository entry allows its tags; familiar names are normalized both ways", () => {
    assert.equal(allowed("docker.io/library/busybox:1", ["busybox"]), true);
    assert.equal(allowed("busybox:1", ["docker.io/library/busybox"]), true);
    assert.equal(allowed("busyboxx:1", ["busybox"]), false);
  });

  test("an exact entry allows that image only", () => {
    const entries = ["registry.example.com/exporter:1.0"];
    assert.equal(allowed("registry.example.com/exporter:1.0", entries), true);
    assert.equal(allowed("registry.example.com/exporter:1.1", entries), false);
    assert.equal(allowed("registry.example.com/exporter", entries), false);
  });

  test("a path ending in / allows what is under it, on path boundaries", () => {
    const entries = ["registry.example.com/team/"];
    assert.equal(allowed("registry.example.com/team/exporter:1", entries), true);
    assert.equal(allowed("registry.example.com/team/sub/exporter:1", entries), true);
    assert.equal(allowed("registry.example.com/teamevil/exporter:1", entries), false);
    assert.equal(allowed("busybox", ["docker.io/"]), true);
  });

  test("globs: * stays within a path segment, ** crosses them", () => {
    assert.equal(allowed("registry.example.com/team/x:1", ["registry.example.com/team/*"]), true);
    assert.equal(
      allowed("registry.example.com/team/a/x:1", ["registry.example.com/team/*"]),
      false,
    );
    assert.equal(allowed("registry.example.com/team/a/x:1", ["registry.example.com/**"]), true);
    assert.equal(allowed("ghcr.io/x/y:v1.2", ["ghcr.io/x/y:v1.*"]), true);
    assert.equal(allowed("ghcr.io/x/y:v2.0", ["ghcr.io/x/y:v1.*"]), false);
    assert.equal(allowed("anything.example/at/all:1", ["**"]), true);
    assert.equal(allowed("registry.example.com.evil/x", ["registry.example.com/**"]), false);
  });

  test("an invalid image is refused with a message", () => {
    const d = checkImage("not a ref", imagePolicy(own, ["**"]));
    assert.equal(d.ok, false);
    assert.match(d.ok ? "" : d.message, /not a valid image reference/);
  });

  test("the message names the allowed images and the flag", () => {
    const d = checkImage("busybox", imagePolicy(own, ["registry.example.com/team/"]));
    assert.equal(d.ok, false);
    assert.match(
      d.ok ? "" : d.message,
      /"busybox" is not in the controller's allowed exporter images \(ghcr\.io\/coder-metrics\/coder-metrics, registry\.example\.com\/team\/\).*--allowed-exporter-images/,
    );
  });

  test("bad entries are refused", () => {
    assert.throws(() => parseImagePattern("Not An Image"), /not an image reference/);
    assert.throws(() => parseImagePattern("a//"), /not a registry or repository path/);
    assert.throws(() => parseImagePattern(" "), /empty/);
  });

  test("checkExporterImage: spec.exporter.image, else the controller's own; nothing to check without a sidecar", () => {
    assert.deepEqual(checkExporterImage({ exporter: { enabled: true } }, own, []), {
      ok: true,
      image: own,
    });
    assert.equal(
      checkExporterImage({ exporter: { enabled: true, image: "busybox" } }, own, []).ok,
      false,
    );
    assert.equal(
      checkExporterImage({ exporter: { enabled: false, image: "busybox" } }, own, []).ok,
      true,
    );
  });
});
