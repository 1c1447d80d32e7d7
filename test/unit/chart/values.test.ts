// values.yaml and values.schema.json: wrong values fail at install time with
// the field's name, and the two files describe the same fields.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parse, parseDocument, isMap, isScalar, type YAMLMap } from "yaml";
import { chartDir, renderError } from "../../support/helm.ts";

interface Schema {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
}
const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")) as Schema;
const valuesText = readFileSync(join(chartDir, "values.yaml"), "utf8");
const values = parse(valuesText) as Record<string, unknown>;

describe("chart: values.schema.json rejects bad values", () => {
  const cases: { name: string; values: Record<string, unknown>; want: RegExp }[] = [
    {
      name: "replicas as a word",
      values: { replicaCount: "two" },
      want: /\/replicaCount.*want integer/,
    },
    { name: "negative replicas", values: { replicaCount: -1 }, want: /\/replicaCount/ },
    {
      name: "unknown logLevel",
      values: { logLevel: "verbose" },
      want: /\/logLevel.*'debug', 'info', 'warn', 'error'/,
    },
    {
      name: "watchNamespaces as a string",
      values: { watchNamespaces: "coder" },
      want: /\/watchNamespaces.*want array/,
    },
    {
      name: "watchNamespaces with a non-DNS name",
      values: { watchNamespaces: ["Coder_NS"] },
      want: /\/watchNamespaces\/0/,
    },
    {
      name: "duplicate watchNamespaces",
      values: { watchNamespaces: ["a", "a"] },
      want: /\/watchNamespaces/,
    },
    {
      name: "a misspelt top-level key",
      values: { replicas: 2 },
      want: /additional properties 'replicas' not allowed/,
    },
    {
      name: "a misspelt nested key",
      values: { metrics: { serviceMonitor: { enable: true } } },
      want: /\/metrics\/serviceMonitor.*'enable'/,
    },
    {
      name: "bad image pull policy",
      values: { image: { pullPolicy: "Sometimes" } },
      want: /\/image\/pullPolicy/,
    },
    {
      name: "a digest that is not sha256",
      values: { image: { digest: "latest" } },
      want: /\/image\/digest/,
    },
    { name: "resync without a unit", values: { resync: "600" }, want: /\/resync/ },
    {
      name: "an instance without a name",
      values: { instances: [{ spec: {} }] },
      want: /\/instances\/0.*name/,
    },
    {
      name: "an instance spec that is not an object",
      values: { instances: [{ name: "x", spec: "yes" }] },
      want: /\/instances\/0\/spec/,
    },
    {
      name: "an unknown alert in disabledAlerts",
      values: { prometheusRule: { disabledAlerts: ["CoderDown"] } },
      want: /\/prometheusRule\/disabledAlerts\/0/,
    },
    {
      name: "a ratio above 1",
      values: { prometheusRule: { thresholds: { apiErrorRatio: 5 } } },
      want: /\/prometheusRule\/thresholds\/apiErrorRatio/,
    },
    { name: "a port out of range", values: { metrics: { port: 70000 } }, want: /\/metrics\/port/ },
    {
      name: "an allowed exporter image with a comma (the flag's separator)",
      values: { exporter: { allowedImages: ["a/b,c/d"] } },
      want: /\/exporter\/allowedImages\/0/,
    },
    {
      name: "a non-string label value",
      values: { commonLabels: { team: 1 } },
      want: /\/commonLabels\/team/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const error = renderError(c.values);
      assert.match(error, /values don't meet the specifications of the schema/);
      assert.match(error, c.want);
    });
  }
});

/** Dotted paths of every key in the values document (arrays are leaves). */
function valuePaths(node: unknown, prefix = ""): string[] {
  if (node === null || typeof node !== "object" || Array.isArray(node)) return [];
  return Object.entries(node as Record<string, unknown>).flatMap(([k, v]) => [
    `${prefix}${k}`,
    ...valuePaths(v, `${prefix}${k}.`),
  ]);
}

/** Dotted paths of every property the schema declares under closed objects. */
function schemaPaths(s: Schema, prefix = ""): string[] {
  if (s.additionalProperties !== false || !s.properties) return [];
  return Object.entries(s.properties).flatMap(([k, v]) => [
    `${prefix}${k}`,
    ...schemaPaths(v, `${prefix}${k}.`),
  ]);
}

function schemaAt(path: string): Schema | undefined {
  let s: Schema | undefined = schema;
  for (const key of path.split(".")) s = s?.properties?.[key];
  return s;
}

describe("chart: values.yaml and values.schema.json mirror each other", () => {
  test("every field in values.yaml is declared in the schema, with a description", () => {
    for (const path of valuePaths(values)) {
      const s = schemaAt(path);
      // Below an open object (securityContext, resources.requests…) Kubernetes' own schema applies.
      const parent = path.includes(".") ? schemaAt(path.slice(0, path.lastIndexOf("."))) : schema;
      if (parent?.additionalProperties !== false) continue;
      assert.ok(s, `values.yaml has ${path}, the schema does not`);
      assert.ok(s.description, `the schema has no description for ${path}`);
    }
  });

  test("every field the schema declares is in values.yaml (so its default is documented)", () => {
    const inValues = new Set(valuePaths(values));
    const chartOnly = new Set(["global", "resources.claims"]);
    for (const path of schemaPaths(schema)) {
      if (chartOnly.has(path) || path.startsWith("instances.")) continue;
      assert.ok(inValues.has(path), `the schema declares ${path}, values.yaml does not set it`);
    }
  });

  test("every field in values.yaml has a comment (on it, or on its parent section for Kubernetes objects)", () => {
    const doc = parseDocument(valuesText);
    const missing: string[] = [];
    const walk = (map: YAMLMap, prefix: string) => {
      for (const [index, pair] of map.items.entries()) {
        const key = isScalar(pair.key) ? String(pair.key.value) : "?";
        const path = `${prefix}${key}`;
        // The yaml parser attaches a comment above a section's first key to the section.
        const commented =
          (isScalar(pair.key) && Boolean(pair.key.commentBefore)) ||
          (index === 0 && Boolean(map.commentBefore));
        const isSection = isMap(pair.value) && (pair.value as YAMLMap).items.length > 0;
        const parent = schemaAt(path.slice(0, Math.max(0, path.lastIndexOf("."))));
        const underOpenObject = prefix !== "" && parent?.additionalProperties !== false;
        if (!commented && !isSection && !underOpenObject) missing.push(path);
        if (isSection && !underOpenObject && schemaAt(path)?.additionalProperties === false)
          walk(pair.value as YAMLMap, `${path}.`);
      }
    };
    walk(doc.contents as YAMLMap, "");
    assert.deepEqual(missing, [], "fields without a comment in values.yaml");
  });
});
