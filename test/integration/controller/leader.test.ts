// Two controller replicas as real processes: exactly one holds the Lease and
// reconciles; SIGKILL it and the other takes over within the lease duration.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { test } from "node:test";
import type { V1Lease } from "@kubernetes/client-node";
import { freePort } from "../../cluster/control-plane.ts";
import { installCoderMetricsCrd } from "../../support/crds.ts";
import { eventually, freshNamespace, testClients } from "../../support/kube.ts";

const clients = testClients();
const cli = resolve(import.meta.dirname, "../../../controller/cli.ts");
const leaseSeconds = 4;

interface Replica {
  name: string;
  process: ChildProcess;
  port: number;
}

async function startReplica(name: string, namespace: string): Promise<Replica> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      cli,
      "controller",
      `--watch-namespaces=${namespace}`,
      `--leader-election-namespace=${namespace}`,
      "--leader-election-id=coder-metrics-test",
      `--lease-duration=${leaseSeconds}s`,
      "--renew-deadline=3s",
      "--retry-period=500ms",
      `--metrics-address=127.0.0.1:${port}`,
      "--log-level=warn",
    ],
    { env: { ...process.env, POD_NAME: name }, stdio: ["ignore", "ignore", "inherit"] },
  );
  return { name, process: child, port };
}

async function isLeader(replica: Replica): Promise<boolean> {
  const body = await fetch(`http://127.0.0.1:${replica.port}/metrics`).then(
    (r) => r.text(),
    () => "",
  );
  return /^coder_metrics_controller_leader 1$/m.test(body);
}

test("one leader at a time; the standby takes over within the lease duration after SIGKILL", async (t) => {
  await installCoderMetricsCrd(clients);
  const namespace = await freshNamespace(t, clients);
  const replicas = [
    await startReplica("replica-a", namespace),
    await startReplica("replica-b", namespace),
  ];
  t.after(() => {
    for (const r of replicas) r.process.kill("SIGKILL");
  });

  const readLease = () =>
    clients.objects.read<
      V1Lease & { apiVersion: string; kind: string; metadata: { name: string } }
    >({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: "coder-metrics-test", namespace },
    });
  const holder = await eventually(
    "a leader",
    async () => (await readLease()).spec?.holderIdentity || undefined,
  );
  const leader = replicas.find((r) => r.name === holder)!;
  const standby = replicas.find((r) => r.name !== holder)!;
  await eventually("the leader to report itself", async () =>
    (await isLeader(leader)) ? true : undefined,
  );
  const standbyReady = await eventually("the standby to serve /readyz", () =>
    fetch(`http://127.0.0.1:${standby.port}/readyz`).then((r) => r.status),
  );
  assert.equal(standbyReady, 200, "a standby is ready (it is healthy, waiting for the lease)");
  assert.equal(
    await isLeader(standby),
    false,
    "the standby must not work while the leader holds the lease",
  );

  const killedAt = Date.now();
  leader.process.kill("SIGKILL");
  await eventually(
    "the standby to take the lease",
    async () => ((await readLease()).spec?.holderIdentity === standby.name ? true : undefined),
    { timeoutMs: leaseSeconds * 1000 * 3 },
  );
  const takeover = Date.now() - killedAt;
  // It must wait out the lease (no split brain) and not much longer.
  assert.ok(
    takeover >= (leaseSeconds - 1) * 1000,
    `took over after ${takeover} ms, before the lease ran out`,
  );
  assert.ok(takeover <= (leaseSeconds + 3) * 1000, `took over after ${takeover} ms`);
  await eventually("the new leader to work", async () =>
    (await isLeader(standby)) ? true : undefined,
  );
  const lease = await readLease();
  assert.equal(lease.spec?.leaseTransitions, 1);

  // The new leader reconciles: a CoderMetrics gets a status.
  await clients.objects.create({
    apiVersion: "coder-metrics.io/v1alpha1",
    kind: "CoderMetrics",
    metadata: { name: "coder", namespace },
    spec: {},
  });
  const status = await eventually("the new leader to write status", async () => {
    const cr = await clients.objects.read<{
      apiVersion: string;
      kind: string;
      metadata: { name: string };
      status?: { conditions?: Array<{ type: string; reason: string }> };
    }>({
      apiVersion: "coder-metrics.io/v1alpha1",
      kind: "CoderMetrics",
      metadata: { name: "coder", namespace },
    });
    return cr.status?.conditions;
  });
  assert.equal(status.find((c) => c.type === "CoderConfigured")?.reason, "NoDeploymentMatched");
});
