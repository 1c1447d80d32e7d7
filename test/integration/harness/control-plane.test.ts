// Proves the harness: the suites really talk to a kube-apiserver backed by
// etcd — objects round-trip, defaults are applied by the server, CRDs are served.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";
import { createCoderDeployment } from "../../support/coder-deployment.ts";

const clients = testClients();

describe("control plane", () => {
  test("a Deployment and a headless Service round-trip with server-side defaults", async (t) => {
    const namespace = await freshNamespace(t, clients);
    const labels = { "app.kubernetes.io/name": "coder" };
    await createCoderDeployment(clients, namespace, { labels });
    await clients.core.createNamespacedService({
      namespace,
      body: {
        metadata: { name: "coder-prom", labels },
        spec: { clusterIP: "None", selector: labels, ports: [{ name: "prom-http", port: 2112 }] },
      },
    });

    const deployment = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
    assert.equal(deployment.spec?.replicas, 1, "the API server defaults replicas");
    assert.equal(deployment.spec?.template.spec?.containers[0]?.imagePullPolicy, "IfNotPresent");
    const service = await clients.core.readNamespacedService({ name: "coder-prom", namespace });
    assert.equal(service.spec?.clusterIP, "None");
    assert.equal(service.spec?.ports?.[0]?.targetPort, 2112, "targetPort defaults to port");
  });

  test("a CustomResourceDefinition becomes served", async (t) => {
    const group = "harness.coder-metrics.test";
    const name = `widgets.${group}`;
    await clients.apiextensions.createCustomResourceDefinition({
      body: {
        metadata: { name },
        spec: {
          group,
          names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
          scope: "Namespaced",
          versions: [
            {
              name: "v1",
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: "object",
                  properties: {
                    spec: {
                      type: "object",
                      properties: { size: { type: "integer", minimum: 1 } },
                    },
                  },
                },
              },
            },
          ],
        },
      },
    });
    t.after(() =>
      clients.apiextensions.deleteCustomResourceDefinition({ name }).catch(() => undefined),
    );
    await eventually("the Widget CRD to be Established", async () => {
      const crd = await clients.apiextensions.readCustomResourceDefinition({ name });
      return crd.status?.conditions?.find((c) => c.type === "Established" && c.status === "True");
    });

    const namespace = await freshNamespace(t, clients);
    const widget = {
      apiVersion: `${group}/v1`,
      kind: "Widget",
      metadata: { name: "w", namespace },
      spec: { size: 3 },
    };
    await eventually("a Widget to be accepted", () => clients.objects.create(widget));
    const read = await clients.objects.read<typeof widget>({
      apiVersion: widget.apiVersion,
      kind: widget.kind,
      metadata: { name: "w", namespace },
    });
    assert.deepEqual(read.spec, { size: 3 });

    await assert.rejects(
      clients.objects.create({
        ...widget,
        metadata: { name: "bad", namespace },
        spec: { size: 0 },
      }),
      (err: unknown) => /spec\.size/.test(String((err as { body?: unknown }).body ?? err)),
      "the CRD's OpenAPI schema is enforced by the API server",
    );
  });
});
