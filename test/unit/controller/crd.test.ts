import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { crdYaml } from "../../tools/print-crd.ts";

const chartCrd = resolve(
  import.meta.dirname,
  "../../../charts/coder-metrics/crds/codermetrics.yaml",
);

describe("CoderMetrics CRD", () => {
  test("the chart's CRD is the one generated from the API schema (run `make generate`)", () => {
    assert.equal(readFileSync(chartCrd, "utf8"), crdYaml());
  });

  test("defaulted fields are not required of the user, so `spec: {}` is a complete CR", () => {
    const crd = parse(crdYaml());
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    assert.equal(spec.required, undefined);
    assert.equal(spec.properties.monitor.required, undefined);
    assert.deepEqual(spec.properties.selector.default, {
      matchLabels: { "app.kubernetes.io/name": "coder" },
    });
  });

  test("printer columns show Ready and Discovered", () => {
    const crd = parse(crdYaml());
    const columns = crd.spec.versions[0].additionalPrinterColumns.map(
      (c: { name: string }) => c.name,
    );
    assert.deepEqual(columns, ["Ready", "Discovered", "Reason", "Age"]);
  });
});
