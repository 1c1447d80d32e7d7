// What users run, and how they install and upgrade it. The controller and the
// exporter sidecar it injects are the image `make image` built — the process
// kubelet runs them through podman as their Pod specs say (the image's
// entrypoint node /app/dist/controller/cli.js, uid 65532, read-only root, the
// Pod's env and volumes) — installed from the packaged chart. Then `helm
// upgrade` with changed values while CoderMetrics objects exist: they stay
// Ready, and Coder's Deployment gets no change the upgrade did not ask for.
//
// "Asked for": replicas, watched namespaces and log level are the controller's
// own settings — Coder's Deployment must not change at all. The image tag is
// also the exporter's image (exporter.image is empty: the chart passes the
// controller's image as --exporter-image), so that upgrade must change exactly
// one field of Coder's pod template: the sidecar's image.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { V1Deployment, V1Pod, V1PodTemplateSpec } from "@kubernetes/client-node";
import { createCoderDeployment } from "../support/coder-deployment.ts";
import { eventually, testClients } from "../support/kube.ts";
import { kubeletLabel, podman } from "./podman.ts";
import { chartImageRepository, localImageRepository, packageVersion } from "./runtime.ts";
import {
  type ControllerRelease,
  coderMetrics,
  crStatus,
  installController,
  scrape,
  waitForCondition,
  withDiagnostics,
} from "./support.ts";

const clients = testClients();
const local = process.env.E2E_LOCAL_STACK !== undefined;
/** This run's container label value; unset when coder-metrics runs from the sources (fallback). */
const containerRun = process.env.E2E_CONTAINER_RUN;
const version = packageVersion();
const suffix = Date.now().toString(36);
const system = `cm-shipped-${suffix}`;
/** Two Coder namespaces, so namespaced mode (a Role in each) is exercised too. */
const coderNamespaces = [`e2e-shipped-a-${suffix}`, `e2e-shipped-b-${suffix}`];
const exporterName = "coder-metrics-exporter";

let controller: ControllerRelease | undefined;

/** The image id this run runs for a local image name (global-setup.ts: E2E_IMAGE_PINS). */
function pinned(name: string): string {
  const id = (JSON.parse(process.env.E2E_IMAGE_PINS ?? "{}") as Record<string, string>)[name];
  assert.match(id ?? "", /^[0-9a-f]{64}$/, `the run pinned ${name}`);
  return id ?? "";
}

interface ContainerInspect {
  Id: string;
  Path: string;
  Args: string[];
  /** The image id it runs. */
  Image: string;
  State: { Running: boolean };
  Config: { User: string; Env: string[]; Labels: Record<string, string> };
  HostConfig: { ReadonlyRootfs: boolean; NetworkMode: string };
  Mounts: Array<{ Destination: string; Source: string; RW: boolean }>;
}

async function inspect(containerId: string | undefined): Promise<ContainerInspect> {
  assert.match(containerId ?? "", /^podman:\/\/[0-9a-f]{64}$/, "a podman container id in status");
  const [c] = JSON.parse(
    await podman(["container", "inspect", (containerId ?? "").slice("podman://".length)]),
  ) as ContainerInspect[];
  assert.ok(c);
  return c;
}

function env(c: ContainerInspect, name: string): string | undefined {
  return c.Config.Env.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
}

/** Runs `script` with the container's own node: its output, or the error it failed with. */
async function execNode(c: ContainerInspect, script: string): Promise<string> {
  return podman(["exec", c.Id, "node", "-e", script]).catch((err: Error) => err.message);
}

async function readyPods(namespace: string, selector: string, count = 1): Promise<V1Pod[]> {
  return eventually(
    `${count} ready Pod(s) ${selector} in ${namespace}`,
    async () => {
      const pods = (await clients.core.listNamespacedPod({ namespace, labelSelector: selector }))
        .items;
      const ready = pods.filter(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      );
      return ready.length === count && ready.length === pods.length ? ready : undefined;
    },
    { timeoutMs: 180_000, intervalMs: 500 },
  );
}

const controllerPods = (count = 1) =>
  readyPods(
    system,
    `app.kubernetes.io/instance=${controller?.release},app.kubernetes.io/component=controller`,
    count,
  );

async function coderPod(namespace: string): Promise<V1Pod> {
  const [pod] = await readyPods(namespace, "app.kubernetes.io/name=coder");
  assert.ok(
    pod?.spec?.containers.some((c) => c.name === exporterName),
    "the sidecar is injected",
  );
  return pod as V1Pod;
}

async function coderDeployment(namespace: string): Promise<V1Deployment> {
  return clients.apps.readNamespacedDeployment({ name: "coder", namespace });
}

function statusOf(pod: V1Pod, container: string) {
  const s = pod.status?.containerStatuses?.find((c) => c.name === container);
  assert.ok(s, `status of ${container}`);
  return s;
}

/** The container log the process kubelet keeps for a Pod. */
function containerLog(pod: V1Pod, container: string): string {
  const pods = join(process.env.E2E_LOCAL_STACK ?? "", "kubelet/pods");
  const dir = (existsSync(pods) ? readdirSync(pods) : []).find((d) =>
    d.startsWith(`${pod.metadata?.namespace}_${pod.metadata?.name}_`),
  );
  return dir ? readFileSync(join(pods, dir, `${container}.log`), "utf8") : "";
}

before(async () => {
  if (!local) return;
  controller = await installController(system);
  for (const namespace of coderNamespaces) {
    await clients.core.createNamespace({ body: { metadata: { name: namespace } } });
    await createCoderDeployment(clients, namespace);
    await clients.objects.create(coderMetrics(namespace, { monitor: { interval: "5s" } }) as never);
  }
  for (const namespace of coderNamespaces)
    await waitForCondition(clients, namespace, "coder", "Ready", "True", 180_000);
});

after(async () => {
  for (const namespace of coderNamespaces)
    await clients.core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await controller?.uninstall();
});

describe("what users run: the image, from the packaged chart", {
  skip: !local && "the local stack's kubelet runs the image (make e2e)",
}, () => {
  test(
    "the controller runs from the image: node /app/dist, uid 65532, read-only root, the Pod's env, the projected token",
    withDiagnostics(async (t) => {
      if (containerRun === undefined) {
        t.skip("coder-metrics runs from the sources on this machine (see the warning above)");
        return;
      }
      const [pod] = await controllerPods();
      assert.ok(pod);
      const status = statusOf(pod, "controller");
      assert.equal(status.image, `${chartImageRepository}:${version}`, "the chart's image");
      assert.match(status.imageID, new RegExp(`^${localImageRepository}@sha256:[0-9a-f]{64}$`));
      const c = await inspect(status.containerID);
      assert.equal(c.State.Running, true);
      assert.equal(c.Image, pinned(`${localImageRepository}:${version}`), "this run's build");
      // The image's ENTRYPOINT: the compiled build, not the sources.
      assert.equal(c.Path, "node");
      assert.equal(c.Args[0], "/app/dist/controller/cli.js");
      assert.equal(c.Args[1], "controller");
      // The chart's podSecurityContext and securityContext.
      assert.equal(c.Config.User, "65532:65532");
      assert.equal(c.HostConfig.ReadonlyRootfs, true);
      assert.equal(c.HostConfig.NetworkMode, "host", "the test's own network namespace");
      assert.equal(c.Config.Labels[kubeletLabel], containerRun);
      // The image's environment, and the Pod's (the chart's nodeOptions win over the image's).
      assert.equal(env(c, "NODE_OPTIONS"), "--max-semi-space-size=4 --max-old-space-size=256");
      assert.equal(env(c, "NODE_ENV"), "production");
      assert.equal(env(c, "POD_NAME"), pod.metadata?.name);
      assert.equal(env(c, "KUBECONFIG"), undefined, "in-cluster config, from the token volume");
      const token = c.Mounts.find(
        (m) => m.Destination === "/var/run/secrets/kubernetes.io/serviceaccount",
      );
      assert.ok(token && !token.RW, "the projected ServiceAccount token, read-only");

      // What the process itself sees.
      assert.equal((await podman(["exec", c.Id, "id", "-u"])).trim(), "65532");
      assert.match(
        await execNode(c, "require('node:fs').writeFileSync('/app/x', '')"),
        /EROFS|read-only file system/i,
      );
      assert.match(
        await execNode(
          c,
          "process.stdout.write(require('node:fs').readdirSync('/var/run/secrets/kubernetes.io/serviceaccount').sort().join(','))",
        ),
        /^ca\.crt,namespace,token$/,
      );
      // Its /metrics says which build runs.
      const metrics = await scrape(`http://${pod.status?.podIP}:8080/metrics`);
      assert.match(
        metrics,
        new RegExp(
          `^coder_metrics_controller_build_info\\{version="${version.replaceAll(".", "\\.")}",nodejs_version="v24\\.[^"]+"\\} 1$`,
          "m",
        ),
      );
    }),
  );

  test(
    "the exporter sidecar runs from the image: the injected NODE_OPTIONS, uid 65532, read-only root, no ServiceAccount token",
    withDiagnostics(async (t) => {
      if (containerRun === undefined) {
        t.skip("coder-metrics runs from the sources on this machine (see the warning above)");
        return;
      }
      const pod = await coderPod(coderNamespaces[0] ?? "");
      const spec = pod.spec?.containers.find((x) => x.name === exporterName);
      const c = await inspect(statusOf(pod, exporterName).containerID);
      assert.equal(c.State.Running, true);
      assert.equal(c.Image, pinned(`${localImageRepository}:${version}`), "this run's build");
      assert.deepEqual(
        [c.Path, c.Args[0], c.Args[1]],
        ["node", "/app/dist/controller/cli.js", "exporter"],
      );
      assert.equal(c.Config.User, "65532:65532");
      assert.equal(c.HostConfig.ReadonlyRootfs, true);
      // The controller's NODE_OPTIONS (sized to the sidecar's memory limit) over the image's.
      const injected = spec?.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
      assert.ok(injected);
      assert.equal(env(c, "NODE_OPTIONS"), injected);
      assert.notEqual(injected, "--max-semi-space-size=16");
      const config = c.Mounts.find((m) => m.Destination === "/etc/coder-metrics");
      assert.ok(config && !config.RW, "the config ConfigMap, read-only");
      // The token-shadowing emptyDir: nothing to act as Coder's ServiceAccount with.
      assert.equal(
        await execNode(
          c,
          "process.stdout.write(JSON.stringify(require('node:fs').readdirSync('/var/run/secrets/kubernetes.io/serviceaccount')))",
        ),
        "[]",
      );
      const exported = await scrape(`http://${pod.status?.podIP}:2113/metrics`);
      assert.match(exported, /^coderd_/m, "it serves coderd's metrics");
    }),
  );

  test(
    "helm upgrade of replicas, watched namespaces and log level: CoderMetrics stay Ready, Coder's Deployments do not change",
    withDiagnostics(async () => {
      assert.ok(controller);
      const before = await Promise.all(
        coderNamespaces.map(async (namespace) => ({
          namespace,
          deployment: await coderDeployment(namespace),
          ready: (await crStatus(clients, namespace, "coder")).conditions?.find(
            (c) => c.type === "Ready",
          ),
        })),
      );
      for (const b of before) assert.equal(b.ready?.status, "True", b.namespace);

      await controller.upgrade([
        "--set",
        `replicaCount=2,logLevel=debug,watchNamespaces={${coderNamespaces.join(",")}}`,
      ]);
      const pods = await controllerPods(2);
      for (const pod of pods) {
        const args = pod.spec?.containers[0]?.args ?? [];
        assert.ok(args.includes("--log-level=debug"), args.join(" "));
        assert.ok(args.includes(`--watch-namespaces=${coderNamespaces.join(",")}`));
      }
      // The new leader has reconciled every CoderMetrics since it started
      // (its informers' initial list enqueues them all).
      const leader = await eventually(
        "a new controller replica leading and done reconciling",
        async () => {
          for (const pod of pods) {
            const text = await scrape(`http://${pod.status?.podIP}:8080/metrics`).catch(() => "");
            const reconciled =
              /^coder_metrics_controller_reconcile_total\{result="success"\} (\d+)/m.exec(text);
            if (
              /^coder_metrics_controller_leader 1$/m.test(text) &&
              Number(reconciled?.[1] ?? 0) >= coderNamespaces.length &&
              /^coder_metrics_controller_workqueue_depth 0$/m.test(text)
            )
              return pod;
          }
          return undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
      assert.match(containerLog(leader, "controller"), /"level":"debug"/, "it logs at debug");

      for (const b of before) {
        const now = await coderDeployment(b.namespace);
        assert.equal(now.metadata?.generation, b.deployment.metadata?.generation, b.namespace);
        assert.deepEqual(now.spec?.template, b.deployment.spec?.template, b.namespace);
        const ready = (await crStatus(clients, b.namespace, "coder")).conditions?.find(
          (c) => c.type === "Ready",
        );
        assert.equal(ready?.status, "True", b.namespace);
        assert.equal(ready?.lastTransitionTime, b.ready?.lastTransitionTime, "never flipped");
      }
    }),
  );

  test(
    "helm upgrade of image.tag: the controller and the sidecar it injects move to the new tag, and nothing else in Coder's pod template",
    withDiagnostics(async () => {
      assert.ok(controller);
      // make image tags the build :dev too; the kubelet runs ghcr.io/…:dev as localhost/…:dev.
      const tag = "dev";
      const before = await Promise.all(coderNamespaces.map((n) => coderDeployment(n)));
      await controller.upgrade(["--set", `image.tag=${tag}`]);
      for (const pod of await controllerPods(2)) {
        const status = statusOf(pod, "controller");
        assert.equal(status.image, `${chartImageRepository}:${tag}`);
        if (containerRun !== undefined)
          assert.equal(
            (await inspect(status.containerID)).Image,
            pinned(`${localImageRepository}:${tag}`),
          );
      }
      for (const [i, namespace] of coderNamespaces.entries()) {
        await waitForCondition(clients, namespace, "coder", "Ready", "True", 180_000);
        const pod = await eventually(
          `Coder's Pod in ${namespace} with the sidecar from :${tag}`,
          async () => {
            const p = await coderPod(namespace);
            const image = p.spec?.containers.find((c) => c.name === exporterName)?.image;
            return image === `${chartImageRepository}:${tag}` ? p : undefined;
          },
          { timeoutMs: 180_000, intervalMs: 1000 },
        );
        if (containerRun !== undefined) {
          const c = await inspect(statusOf(pod, exporterName).containerID);
          assert.equal(c.Image, pinned(`${localImageRepository}:${tag}`));
        }
        // Exactly one field changed: the sidecar's image.
        const plain = (t: V1PodTemplateSpec | undefined) =>
          JSON.parse(JSON.stringify(t ?? {})) as V1PodTemplateSpec;
        const was = plain(before[i]?.spec?.template);
        const now = plain((await coderDeployment(namespace)).spec?.template);
        const sidecar = now.spec?.containers.find((c) => c.name === exporterName);
        assert.ok(sidecar);
        sidecar.image = `${chartImageRepository}:${version}`;
        assert.deepEqual(now, was, namespace);
      }
    }),
  );
});
