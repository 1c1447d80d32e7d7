// Two replicas as real processes; the leader is cut off from the API server
// (a TCP proxy black-holes its traffic) or frozen (SIGSTOP). client-go's
// timing contract must hold: the old leader stops writing before its lease
// can run out and exits, the standby takes over, and no write of the old
// leader reaches the API server after the new leader's first one — checked
// in the API server's audit log, where the old leader's requests come from
// the proxy's own address (127.0.0.2). Its own control plane: audit logging.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import type * as k8s from "@kubernetes/client-node";
import {
  type AuditEvent,
  type ControlPlane,
  startControlPlane,
} from "../../cluster/control-plane.ts";
import { createCoderDeployment, patchContainer } from "../../support/coder-deployment.ts";
import { installCoderMetricsCrd } from "../../support/crds.ts";
import { eventually, freshNamespace, type TestClients, testClients } from "../../support/kube.ts";
import { kubeconfigThrough, startTcpProxy, type TcpProxy } from "../../support/tcp-proxy.ts";

const skip =
  process.env.USE_EXISTING_CLUSTER === "true"
    ? "reads the API server's audit log: needs a private control plane"
    : false;
const cli = resolve(import.meta.dirname, "../../../controller/cli.ts");
const leaseSeconds = 4;
const proxySource = "127.0.0.2";
const writeVerbs = new Set(["create", "update", "patch", "delete"]);
let controlPlane: ControlPlane;
let clients: TestClients;

before(async () => {
  if (skip) return;
  controlPlane = await startControlPlane({ audit: true });
  clients = testClients(controlPlane.kubeconfigPath);
  await installCoderMetricsCrd(clients);
});
after(() => controlPlane?.stop());

interface Replica {
  name: string;
  process: ChildProcess;
  exit: Promise<number | null>;
}

function startReplica(name: string, namespace: string, kubeconfig: string): Replica {
  const child = spawn(
    process.execPath,
    [
      cli,
      "controller",
      `--kubeconfig=${kubeconfig}`,
      `--watch-namespaces=${namespace}`,
      `--leader-election-namespace=${namespace}`,
      "--leader-election-id=coder-metrics-test",
      `--lease-duration=${leaseSeconds}s`,
      "--renew-deadline=3s",
      "--retry-period=500ms",
      `--metrics-address=127.0.0.1:0`,
      "--log-level=error",
    ],
    { env: { ...process.env, POD_NAME: name }, stdio: ["ignore", "ignore", "inherit"] },
  );
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { name, process: child, exit };
}

interface Setup {
  namespace: string;
  proxy: TcpProxy;
  /** Replica A, reaching the API server through the proxy, and the leader. */
  leader: Replica;
  standby: Replica;
  readLease(): Promise<k8s.V1Lease>;
  /** Stops the other writer. */
  stopEditing(): Promise<void>;
}

/** A namespace, a wired Coder, replica A leading through the proxy, replica B standing by. */
async function setup(t: TestContext): Promise<Setup> {
  const namespace = await freshNamespace(t, clients);
  const server = new URL(controlPlane.server);
  const proxy = await startTcpProxy(
    { host: server.hostname, port: Number(server.port) },
    { localAddress: proxySource },
  );
  t.after(() => proxy.close());
  const viaProxy = join(controlPlane.dir, `kubeconfig-proxy-${namespace}`);
  writeFileSync(viaProxy, kubeconfigThrough(clients.config, proxy).exportConfig(), {
    mode: 0o600,
  });
  const readLease = () =>
    clients.objects.read<k8s.V1Lease & k8s.KubernetesObject>({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "coder-metrics-test", namespace },
    });

  const leader = startReplica("replica-a", namespace, viaProxy);
  t.after(() => leader.process.kill("SIGKILL"));
  await eventually("replica-a to lead", async () =>
    (await readLease()).spec?.holderIdentity === "replica-a" ? true : undefined,
  );
  const standby = startReplica("replica-b", namespace, controlPlane.kubeconfigPath);
  t.after(() => standby.process.kill("SIGKILL"));

  await createCoderDeployment(clients, namespace, { replicas: 0 });
  const cr = {
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
  };
  await clients.objects.create({ ...cr, spec: {} });
  await eventually("the leader to configure Coder", async () => {
    const d = await clients.apps.readNamespacedDeployment({ name: "coder", namespace });
    return d.spec?.template.spec?.containers.some((c) => c.name === "coder-metrics-exporter")
      ? true
      : undefined;
  });

  // Someone keeps editing a field the controller owns, so whoever leads keeps writing.
  let editing = true;
  const editor = (async () => {
    for (let i = 0; editing; i++) {
      await patchContainer(
        clients,
        namespace,
        { name: "coder-metrics-exporter", image: `busybox:1.${i}` },
        { fieldManager: "kubectl-edit" },
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  const stopEditing = async () => {
    editing = false;
    await editor;
  };
  t.after(stopEditing);
  return { namespace, proxy, leader, standby, readLease, stopEditing };
}

/** Waits for the standby to lead and to have written something as the leader. */
async function standbyTakesOver(s: Setup): Promise<void> {
  await eventually(
    "replica-b to take the lease",
    async () => ((await s.readLease()).spec?.holderIdentity === "replica-b" ? true : undefined),
    { timeoutMs: 30_000 },
  );
  await eventually("replica-b to heal the Deployment", async () => {
    const writes = controllerWrites(s.namespace).filter((e) => !fromProxy(e));
    return writes.some((e) => e.objectRef?.resource === "deployments") ? true : undefined;
  });
}

function accepted(e: AuditEvent): boolean {
  const code = e.responseStatus?.code ?? 0;
  return code >= 200 && code < 300;
}

function fromProxy(e: AuditEvent): boolean {
  return e.sourceIPs?.[0] === proxySource;
}

/** The controllers' writes in the namespace (the test's own writes carry another field manager). */
function controllerWrites(namespace: string): AuditEvent[] {
  return controlPlane
    .auditEvents()
    .filter(
      (e) =>
        e.stage === "ResponseComplete" &&
        writeVerbs.has(e.verb) &&
        e.objectRef?.namespace === namespace &&
        (fromProxy(e) || /[?&]fieldManager=coder-metrics(&|$)/.test(e.requestURI)),
    )
    .sort((a, b) => a.requestReceivedTimestamp.localeCompare(b.requestReceivedTimestamp));
}

/** No write of the old leader after the new leader's first; and none past the old lease's end. */
function assertHandedOverCleanly(namespace: string): void {
  const writes = controllerWrites(namespace);
  const old = writes.filter(fromProxy);
  const takeover = writes.find(
    (e) => !fromProxy(e) && e.objectRef?.resource === "leases" && accepted(e),
  );
  assert.ok(old.length > 0, "the old leader's writes are in the audit log");
  assert.ok(takeover !== undefined, "the new leader took the lease");
  const late = old.filter((e) => e.requestReceivedTimestamp >= takeover.requestReceivedTimestamp);
  assert.deepEqual(
    late.map(
      (e) =>
        `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name} at ${e.requestReceivedTimestamp}`,
    ),
    [],
    `writes of the old leader after the new leader took over at ${takeover.requestReceivedTimestamp}`,
  );
  // The old leader's lease ran until its last accepted write (create or renew) + its duration.
  const lastRenew = old.filter((e) => e.objectRef?.resource === "leases" && accepted(e)).at(-1);
  assert.ok(lastRenew !== undefined);
  const leaseEnd = new Date(Date.parse(lastRenew.requestReceivedTimestamp) + leaseSeconds * 1000);
  const lastWrite = old.at(-1);
  assert.ok(
    lastWrite !== undefined && Date.parse(lastWrite.requestReceivedTimestamp) < leaseEnd.getTime(),
    `the old leader's last write (${lastWrite?.requestReceivedTimestamp}) came before its lease could end (${leaseEnd.toISOString()})`,
  );
}

describe("leader election under partition", { skip }, () => {
  test("a leader cut off from the API server stops and exits before its lease runs out; the standby takes over; nothing the old leader sent lands later", async (t) => {
    const s = await setup(t);
    s.proxy.blackHole();
    assert.equal(await s.leader.exit, 1, "the cut-off leader exits non-zero");
    await standbyTakesOver(s);
    await s.stopEditing();

    s.proxy.heal();
    await eventually("the old leader's connections to be gone", async () =>
      s.proxy.open === 0 ? true : undefined,
    );
    assert.equal(
      s.proxy.forwardedSinceHeal,
      0,
      "not a byte of the partition reached the API server",
    );
    assertHandedOverCleanly(s.namespace);
  });

  test("SIGTERM: the leader finishes its work, then hands the lease back; its last write is the release", async (t) => {
    const s = await setup(t);
    s.leader.process.kill("SIGTERM");
    assert.equal(await s.leader.exit, 0);
    await standbyTakesOver(s);
    await s.stopEditing();
    const old = controllerWrites(s.namespace).filter(fromProxy);
    const last = old.at(-1);
    assert.equal(`${last?.verb} ${last?.objectRef?.resource}`, "update leases");
    assert.equal((await s.readLease()).spec?.leaseTransitions, 1, "one handover");
    assertHandedOverCleanly(s.namespace);
  });

  test("a leader frozen past its lease and then resumed hands over cleanly", async (t) => {
    const s = await setup(t);
    s.leader.process.kill("SIGSTOP");
    await standbyTakesOver(s);
    s.leader.process.kill("SIGCONT");
    assert.equal(await s.leader.exit, 1, "the resumed leader sees its lease is gone and exits");
    await s.stopEditing();
    assertHandedOverCleanly(s.namespace);
  });
});
