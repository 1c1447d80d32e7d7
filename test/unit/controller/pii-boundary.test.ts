// With spec.exporter.config.pii the exporter is the only way to coderd's raw
// metrics: coderd on loopback, the Service and annotations on the exporter's
// port only, and a user's own non-loopback address reported, not accepted.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  coderdAddressFlag,
  isLoopbackHost,
  loopbackAddress,
  piiCondition,
} from "../../../controller/desired/pii-boundary.ts";
import { planCoderd } from "../../../controller/desired/coderd.ts";
import { desiredService } from "../../../controller/desired/service.ts";
import { coderDeployment } from "../../support/coder-deployment.ts";
import { coderMetrics, planFor } from "./fixtures.ts";

const pii = { exporter: { config: { pii: { hashLabels: ["username"] } } } };

function envOf(p: ReturnType<typeof planFor>): Record<string, string | undefined> {
  assert.ok(p.ok, p.ok ? "" : p.message);
  const coderd = p.apply.spec?.template.spec?.containers[0];
  return Object.fromEntries((coderd?.env ?? []).map((e) => [e.name, e.value]));
}

describe("loopback", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "[::1]", "[0:0:0:0:0:0:0:1]"]) {
    test(`${host} is loopback`, () => assert.equal(isLoopbackHost(host), true));
  }
  for (const host of ["", "0.0.0.0", "[::]", "10.0.0.1", "128.0.0.1", "coder.local", "[::2]"]) {
    test(`${JSON.stringify(host)} is not`, () => assert.equal(isLoopbackHost(host), false));
  }

  test("an address gets a loopback host and keeps its port", () => {
    assert.equal(loopbackAddress("0.0.0.0:2112"), "127.0.0.1:2112");
    assert.equal(loopbackAddress(":9100"), "127.0.0.1:9100");
    assert.equal(loopbackAddress("[::]:2112"), "127.0.0.1:2112");
    assert.equal(loopbackAddress("[::1]:2112"), "[::1]:2112");
    assert.equal(loopbackAddress("127.0.0.5:2112"), "127.0.0.5:2112");
  });

  test("coderd's --prometheus-address flag is found in args, either form", () => {
    assert.equal(
      coderdAddressFlag({ args: ["server", "--prometheus-address=0.0.0.0:1"] }),
      "0.0.0.0:1",
    );
    assert.equal(coderdAddressFlag({ command: ["coder", "--prometheus-address", ":2"] }), ":2");
    assert.equal(coderdAddressFlag({ args: ["server"] }), undefined);
  });
});

describe("planCoderd with pii", () => {
  test("coderd listens on loopback; the exporter still scrapes it inside the Pod", () => {
    const p = planFor(pii);
    assert.equal(envOf(p).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:2112");
    assert.ok(p.ok);
    assert.deepEqual(p.coderAddress, { host: "127.0.0.1", port: 2112 });
    const exporter = p.apply.spec?.template.spec?.containers[1];
    assert.ok(exporter?.args?.includes("--upstream=http://127.0.0.1:2112/metrics"));
    assert.ok(exporter?.args?.includes("--listen=0.0.0.0:2113"), "Prometheus reaches the exporter");
    assert.equal(p.piiExposure, undefined);
  });

  test("the port of spec.coder.address is kept", () => {
    const p = planFor({ ...pii, coder: { address: "0.0.0.0:9100" } });
    assert.equal(envOf(p).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:9100");
  });

  test("without pii nothing changes (0.0.0.0, coderd scrapeable)", () => {
    const p = planFor({});
    assert.equal(envOf(p).CODER_PROMETHEUS_ADDRESS, "0.0.0.0:2112");
    assert.ok(p.ok);
    assert.equal(p.piiExposure, undefined);
  });

  test("Respect: a user's non-loopback address is kept but reported as exposed", () => {
    const p = planFor(pii, [{ name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9100" }]);
    assert.ok(p.ok);
    assert.equal(p.piiExposure?.status, "Exposed");
    assert.match(p.piiExposure?.message ?? "", /CODER_PROMETHEUS_ADDRESS=0\.0\.0\.0:9100/);
    assert.match(p.piiExposure?.message ?? "", /existingSettings: Override/);
  });

  test("Respect: a user's loopback address is fine", () => {
    const p = planFor(pii, [{ name: "CODER_PROMETHEUS_ADDRESS", value: "localhost:9100" }]);
    assert.ok(p.ok);
    assert.equal(p.piiExposure, undefined);
  });

  test("Respect: an address from valueFrom cannot be checked", () => {
    const p = planFor(pii, [
      {
        name: "CODER_PROMETHEUS_ADDRESS",
        valueFrom: { configMapKeyRef: { name: "coder", key: "address" } },
      },
    ]);
    assert.ok(p.ok);
    assert.equal(p.piiExposure?.status, "Unknown");
  });

  test("Override: the user's address is replaced by loopback", () => {
    const p = planFor({ ...pii, coder: { existingSettings: "Override" } }, [
      { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9100" },
    ]);
    assert.equal(envOf(p).CODER_PROMETHEUS_ADDRESS, "127.0.0.1:2112");
    assert.ok(p.ok);
    assert.equal(p.piiExposure, undefined);
  });

  test("pod annotations name the exporter's port", () => {
    const p = planFor({ ...pii, prometheusAnnotations: { pods: true } });
    assert.ok(p.ok);
    assert.equal(p.apply.spec?.template.metadata?.annotations?.["prometheus.io/port"], "2113");
  });
});

describe("the Service with pii", () => {
  const podSelector = { "app.kubernetes.io/name": "coder" };

  test("has only the exporter's port, and its annotations name it", () => {
    const cr = coderMetrics({ ...pii, prometheusAnnotations: { service: true } });
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.deepEqual(
      svc.spec?.ports?.map((p) => [p.name, p.port]),
      [["exporter-http", 2113]],
    );
    assert.equal(svc.metadata?.annotations?.["prometheus.io/port"], "2113");
  });

  test("without pii it has both ports", () => {
    const cr = coderMetrics({});
    const svc = desiredService({ cr, spec: cr.spec, podSelector, coderPort: 2112 });
    assert.deepEqual(
      svc.spec?.ports?.map((p) => p.name),
      ["prom-http", "exporter-http"],
    );
  });
});

describe("PIIProtected", () => {
  const spec = coderMetrics(pii).spec;

  test("absent without pii", () => {
    assert.equal(
      piiCondition(coderMetrics({}).spec, [{ name: "coder", exposure: undefined }]),
      undefined,
    );
  });

  test("True when every Deployment keeps coderd on loopback", () => {
    const c = piiCondition(spec, [{ name: "coder", exposure: undefined }]);
    assert.equal(c?.status, "True");
    assert.equal(c?.reason, "LoopbackOnly");
  });

  test("False, reason PIIExposed, naming the Deployment and why", () => {
    const c = piiCondition(spec, [
      { name: "a", exposure: undefined },
      { name: "b", exposure: { status: "Exposed", message: "sets 0.0.0.0:9100" } },
      { name: "c", exposure: { status: "Unknown", message: "valueFrom" } },
    ]);
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "PIIExposed");
    assert.equal(c?.message, "Deployment b: sets 0.0.0.0:9100");
  });

  test("Unknown when an address cannot be read", () => {
    const c = piiCondition(spec, [{ name: "c", exposure: { status: "Unknown", message: "x" } }]);
    assert.equal(c?.status, "Unknown");
    assert.equal(c?.reason, "AddressUnknown");
  });

  test("coderd's own --prometheus-address flag wins over our loopback env, as in Coder: reported", () => {
    const cr = coderMetrics(pii);
    const deployment = coderDeployment();
    const coderd = deployment.spec?.template.spec?.containers[0];
    assert.ok(coderd);
    coderd.args = ["server", "--prometheus-address=0.0.0.0:2112"];
    const p = planCoderd({
      cr,
      spec: cr.spec,
      deployment,
      ownedEnv: new Set(),
      exporterImage: "ghcr.io/example/coder-metrics:1.0.0",
      exporterConfigMap: "coder-exporter-config",
    });
    assert.ok(p.ok);
    assert.equal(p.piiExposure?.status, "Exposed");
    assert.match(p.piiExposure?.message ?? "", /--prometheus-address=0\.0\.0\.0:2112/);
  });
});
