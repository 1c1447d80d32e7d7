import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { V1Container } from "@kubernetes/client-node";
import { parseCoderAddress, upstreamUrl } from "../../../controller/desired/coder-address.ts";
import { releaseCoderd } from "../../../controller/desired/coderd.ts";
import { coderDeployment } from "../../support/coder-deployment.ts";
import { planFor } from "./fixtures.ts";

function containers(p: ReturnType<typeof planFor>): V1Container[] {
  assert.ok(p.ok, `plan failed: ${p.ok ? "" : p.message}`);
  return p.apply.spec?.template.spec?.containers ?? [];
}

describe("planCoderd", () => {
  test("sets the Prometheus env on coderd and adds the exporter with its config volume", () => {
    const p = planFor({});
    const [coderd, exporter] = containers(p);
    assert.deepEqual(coderd, {
      name: "coder",
      env: [
        { name: "CODER_PROMETHEUS_ENABLE", value: "true" },
        { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:2112" },
      ],
    });
    assert.equal(exporter?.name, "coder-metrics-exporter");
    assert.equal(exporter?.image, "ghcr.io/example/coder-metrics:1.0.0");
    assert.deepEqual(exporter?.args, [
      "exporter",
      "--upstream=http://127.0.0.1:2112/metrics",
      "--listen=0.0.0.0:2113",
      "--config=/etc/coder-metrics/exporter.yaml",
    ]);
    assert.deepEqual(exporter?.ports, [
      { name: "exporter-http", containerPort: 2113, protocol: "TCP" },
    ]);
    assert.ok(p.ok);
    assert.deepEqual(p.apply.spec?.template.spec?.volumes, [
      {
        name: "coder-metrics-exporter-config",
        configMap: { name: "coder-exporter-config", optional: true },
      },
      { name: "coder-metrics-no-token", emptyDir: { medium: "Memory", sizeLimit: "1Ki" } },
    ]);
    assert.equal(p.apply.metadata?.annotations?.["coder-metrics.io/instance"], "coder/coder");
    assert.deepEqual(p.coderAddress, { host: "0.0.0.0", port: 2112 });
  });

  test("configured pods are labelled, so the Service selects only them during a rollout", () => {
    const p = planFor({});
    assert.ok(p.ok);
    assert.deepEqual(p.apply.spec?.template.metadata?.labels, {
      "coder-metrics.io/instance": "coder",
    });
    assert.equal(
      p.apply.spec?.selector,
      undefined,
      "the selector stays the chart's (it is immutable)",
    );
  });

  test("only the fields we own are in the apply (no image, no other env)", () => {
    const [coderd] = containers(planFor({}));
    assert.deepEqual(Object.keys(coderd ?? {}).sort(), ["env", "name"]);
    assert.equal(
      coderd?.env?.some((e) => e.name === "CODER_HTTP_ADDRESS"),
      false,
    );
  });

  test("the exporter sidecar passes the restricted Pod Security Standard on its own", () => {
    const [, exporter] = containers(planFor({}));
    const sc = exporter?.securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.equal(sc?.readOnlyRootFilesystem, true);
    assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
    assert.equal(sc?.seccompProfile?.type, "RuntimeDefault");
  });

  test("the sidecar cannot read the Pod's ServiceAccount token: an empty read-only volume shadows its path", () => {
    const p = planFor({});
    const [coderd, exporter] = containers(p);
    assert.deepEqual(
      exporter?.volumeMounts?.find(
        (m) => m.mountPath === "/var/run/secrets/kubernetes.io/serviceaccount",
      ),
      {
        name: "coder-metrics-no-token",
        mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
        readOnly: true,
      },
    );
    assert.ok(p.ok);
    const volume = p.apply.spec?.template.spec?.volumes?.find(
      (v) => v.name === "coder-metrics-no-token",
    );
    assert.deepEqual(volume?.emptyDir, { medium: "Memory", sizeLimit: "1Ki" });
    assert.equal(coderd?.volumeMounts, undefined, "coderd keeps its own token (it needs it)");
  });

  test("the exporter's V8 heap is sized to its memory limit", () => {
    const env = (spec: Parameters<typeof planFor>[0]) => containers(planFor(spec))[1]?.env;
    assert.deepEqual(env({}), [
      // The default limit is 256Mi.
      { name: "NODE_OPTIONS", value: "--max-semi-space-size=16 --max-old-space-size=128" },
    ]);
    assert.deepEqual(env({ exporter: { resources: { limits: { memory: "1Gi" } } } }), [
      { name: "NODE_OPTIONS", value: "--max-semi-space-size=16 --max-old-space-size=768" },
    ]);
  });

  test("optional Coder settings map to their env vars", () => {
    const [coderd] = containers(
      planFor({
        coder: {
          collectAgentStats: true,
          collectDBMetrics: false,
          aggregateAgentStatsBy: ["template_name", "agent_name"],
        },
      }),
    );
    assert.deepEqual(coderd?.env?.slice(2), [
      { name: "CODER_PROMETHEUS_COLLECT_AGENT_STATS", value: "true" },
      { name: "CODER_PROMETHEUS_COLLECT_DB_METRICS", value: "false" },
      { name: "CODER_PROMETHEUS_AGGREGATE_AGENT_STATS_BY", value: "template_name,agent_name" },
    ]);
  });

  test("Respect: a user's own address is kept and used for the exporter's upstream", () => {
    const p = planFor({}, [{ name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:9999" }]);
    const [coderd, exporter] = containers(p);
    assert.deepEqual(
      coderd?.env?.map((e) => e.name),
      ["CODER_PROMETHEUS_ENABLE"],
    );
    assert.ok(exporter?.args?.includes("--upstream=http://127.0.0.1:9999/metrics"));
    assert.ok(p.ok);
    assert.deepEqual(p.respected, ["CODER_PROMETHEUS_ADDRESS"]);
    assert.equal(p.coderAddress.port, 9999);
  });

  test("Respect: an env var we already own is ours to change, not the user's", () => {
    const [coderd] = containers(
      planFor(
        { coder: { address: "0.0.0.0:2200" } },
        [{ name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:2112" }],
        ["CODER_PROMETHEUS_ADDRESS"],
      ),
    );
    assert.deepEqual(coderd?.env?.[1], { name: "CODER_PROMETHEUS_ADDRESS", value: "0.0.0.0:2200" });
  });

  test("Respect: a user who disabled Prometheus gets nothing injected and a reason", () => {
    const p = planFor({}, [{ name: "CODER_PROMETHEUS_ENABLE", value: "false" }]);
    assert.equal(p.ok, false);
    assert.equal(!p.ok && p.reason, "PrometheusDisabledByUser");
  });

  test("Override: our values replace the user's", () => {
    const [coderd] = containers(
      planFor({ coder: { existingSettings: "Override" } }, [
        { name: "CODER_PROMETHEUS_ENABLE", value: "false" },
      ]),
    );
    assert.deepEqual(coderd?.env?.[0], { name: "CODER_PROMETHEUS_ENABLE", value: "true" });
  });

  test("a missing coderd container is reported with the containers that exist", () => {
    const p = planFor({ coderContainer: "coderd" });
    assert.equal(p.ok, false);
    assert.match(p.ok ? "" : p.message, /no container "coderd" \(containers: coder\)/);
  });

  test("exporter disabled: no sidecar, no volume", () => {
    const p = planFor({ exporter: { enabled: false }, monitor: { target: "Coderd" } });
    assert.equal(containers(p).length, 1);
    assert.ok(p.ok);
    assert.equal(p.apply.spec?.template.spec?.volumes, undefined);
  });

  test("a PII hash key Secret is mounted and passed by file", () => {
    const p = planFor({
      exporter: {
        config: { pii: { hashLabels: ["username"], hashKeySecretRef: { name: "k", key: "hash" } } },
      },
    });
    const [, exporter] = containers(p);
    assert.ok(exporter?.args?.includes("--hash-key-file=/etc/coder-metrics-hash-key/key"));
    assert.ok(p.ok);
    assert.deepEqual(p.apply.spec?.template.spec?.volumes?.[1], {
      name: "coder-metrics-hash-key",
      secret: { secretName: "k", items: [{ key: "hash", path: "key" }] },
    });
  });

  test("release applies nothing, so server-side apply removes all we set", () => {
    assert.deepEqual(releaseCoderd(coderDeployment()), {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "coder", namespace: "coder" },
    });
  });
});

describe("coder address", () => {
  for (const [address, want, url] of [
    ["0.0.0.0:2112", { host: "0.0.0.0", port: 2112 }, "http://127.0.0.1:2112/metrics"],
    [":2112", { host: "", port: 2112 }, "http://127.0.0.1:2112/metrics"],
    ["[::]:2112", { host: "[::]", port: 2112 }, "http://127.0.0.1:2112/metrics"],
    ["127.0.0.1:9000", { host: "127.0.0.1", port: 9000 }, "http://127.0.0.1:9000/metrics"],
  ] as const) {
    test(`${address} → ${url}`, () => {
      const parsed = parseCoderAddress(address);
      assert.deepEqual(parsed, want);
      assert.equal(upstreamUrl(parsed!), url);
    });
  }
  for (const bad of ["2112", "host:", "host:99999", "a:b:1"]) {
    test(`rejects ${JSON.stringify(bad)}`, () => assert.equal(parseCoderAddress(bad), undefined));
  }
});
