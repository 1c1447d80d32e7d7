// How API answers become errors and conditions: the API's own reason is kept
// (it is what a user or an alert matches on), a write the server refuses is a
// condition, and no answer at all is only retried.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as k8s from "@kubernetes/client-node";
import { Kube, KubeError } from "../../../controller/operator/kube.ts";
import { KubeTransport } from "../../../controller/operator/kube-config.ts";
import { createControllerMetrics } from "../../../controller/operator/metrics.ts";
import { refusalOf } from "../../../controller/operator/reconcile.ts";

function kube(bounds: ConstructorParameters<typeof KubeTransport>[1] = { timeoutMs: 1000 }) {
  const config = new k8s.KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: "c", server: "https://127.0.0.1:1", skipTLSVerify: false }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return new Kube(new KubeTransport(config, bounds), createControllerMetrics());
}

const status = (code: number, reason: string, message: string) =>
  new k8s.ApiException(code, "", JSON.stringify({ kind: "Status", code, reason, message }), {});

describe("Kube.call", () => {
  test("keeps the API's status, reason and message", async () => {
    const err = await kube()
      .call("apply", "Deployment", "Deployment ns/coder", () =>
        Promise.reject(status(422, "Invalid", "denied by policy")),
      )
      .catch((e: unknown) => e);
    assert.ok(err instanceof KubeError);
    assert.equal(err.status, 422);
    assert.equal(err.reason, "Invalid");
    assert.equal(err.detail, "denied by policy");
    assert.match(err.message, /^apply Deployment ns\/coder: HTTP 422: denied by policy$/);
  });

  test("a deadline is no answer (status 0), not the DOMException's legacy code", async () => {
    const err = await kube()
      .call("get", "Lease", "Lease ns/l", () =>
        Promise.reject(new DOMException("signal timed out", "TimeoutError")),
      )
      .catch((e: unknown) => e);
    assert.ok(err instanceof KubeError);
    assert.equal(err.status, 0);
    assert.match(err.message, /no answer within 1000 ms/);
  });

  test("past the fence, a request is refused before it is sent", () => {
    const k = kube({ timeoutMs: 1000, deadline: () => performance.now() - 1 });
    assert.throws(() => k.transport.requestSignal(), /not leading/);
  });

  test("a request's signal ends at the fence when that comes before its timeout", async () => {
    const k = kube({ timeoutMs: 60_000, deadline: () => performance.now() + 20 });
    const signal = k.transport.requestSignal();
    await new Promise((resolve) => signal.addEventListener("abort", resolve));
    assert.equal(signal.reason.name, "TimeoutError");
  });
});

describe("refusalOf", () => {
  const err = (code: number, reason = "") =>
    new KubeError("apply", "Deployment ns/coder", code, "the server says no", reason);

  test("the API's reason becomes the condition reason; the message names the object", () => {
    assert.deepEqual(refusalOf(err(403, "Forbidden"), "CoderConfigured", "Deployment ns/coder"), {
      condition: "CoderConfigured",
      reason: "Forbidden",
      message:
        "Deployment ns/coder: the API server refused the change (Forbidden): the server says no",
    });
  });

  test("without a reason (a webhook's bare answer), one from the status code", () => {
    assert.equal(refusalOf(err(400), "ServiceReady", "Service ns/s")?.reason, "BadRequest");
    assert.equal(refusalOf(err(409), "ServiceReady", "Service ns/s")?.reason, "Conflict");
    assert.equal(refusalOf(err(418, "not a reason!"), "ServiceReady", "x")?.reason, "Refused");
  });

  test("no answer, not found, throttling and server errors are only retried", () => {
    for (const code of [0, 404, 408, 429, 500, 503])
      assert.equal(refusalOf(err(code), "CoderConfigured", "x"), undefined, String(code));
    assert.equal(refusalOf(new Error("boom"), "CoderConfigured", "x"), undefined);
  });
});
