// A real Kubernetes control plane on loopback for the integration and e2e
// suites: etcd + kube-apiserver (+ kube-controller-manager when asked), with
// generated certificates and an admin kubeconfig — the envtest recipe.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { findBinaries } from "./binaries.ts";
import { createPki, type Pki } from "./certs.ts";
import { ManagedProcess } from "./process.ts";

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (Deployments → ReplicaSets → Pods, EndpointSlices, GC). */
  controllerManager?: boolean;
  /** Keep the working directory after stop (logs, certs) for debugging. */
  keepDir?: boolean;
  /** How long to wait for readiness. */
  readyTimeoutMs?: number;
  /** Write an audit log of every write request (Metadata level), read with auditEvents(). */
  audit?: boolean;
}

/** One audit.k8s.io/v1 Event (the fields tests read). */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  sourceIPs?: string[];
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string };
  responseStatus?: { code?: number };
  /** RFC 3339 with microseconds: compare as strings. */
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

export interface ControlPlane {
  dir: string;
  server: string;
  kubeconfigPath: string;
  apiserver: ManagedProcess;
  etcd: ManagedProcess;
  controllerManager: ManagedProcess | undefined;
  /** The audit log so far (with the audit option; empty without). */
  auditEvents(): AuditEvent[];
  /** Compacts etcd's history up to now, so watches from older resourceVersions get 410 Gone. */
  compactEtcd(): Promise<number>;
  /** Starts the API server again after it was stopped or killed (same port, certs and etcd). */
  restartApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") reject(new Error("no port"));
        else resolve(address.port);
      });
    });
  });
}

/** kube-controller-manager against the API server in kubeconfigPath, running only `controllers`. */
export async function startControllerManager(options: {
  binary: string;
  kubeconfigPath: string;
  /** Its log and serving certificates go here. */
  dir: string;
  /** --controllers, e.g. "clusterrole-aggregation-controller". */
  controllers: string;
  extraArgs?: string[];
}): Promise<ManagedProcess> {
  const { kubeconfigPath, dir } = options;
  const kcm = new ManagedProcess(
    "kube-controller-manager",
    join(dir, "kube-controller-manager.log"),
  );
  kcm.start(options.binary, [
    `--kubeconfig=${kubeconfigPath}`,
    `--authentication-kubeconfig=${kubeconfigPath}`,
    `--authorization-kubeconfig=${kubeconfigPath}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${await freePort()}`,
    `--cert-dir=${join(dir, "kcm-certs")}`,
    "--leader-elect=false",
    "--use-service-account-credentials=false",
    `--controllers=${options.controllers}`,
    ...(options.extraArgs ?? []),
  ]);
  return kcm;
}

function kubeconfig(server: string, pki: Pki): string {
  const b64 = (path: string) => readFileSync(path).toString("base64");
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: "local", cluster: { server, "certificate-authority-data": b64(pki.caCert) } },
    ],
    users: [
      {
        name: "admin",
        user: {
          "client-certificate-data": b64(pki.adminCert),
          "client-key-data": b64(pki.adminKey),
        },
      },
    ],
    contexts: [{ name: "coder-metrics-test", context: { cluster: "local", user: "admin" } }],
    "current-context": "coder-metrics-test",
  });
}

function httpsStatus(url: string, pki: Pki): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  proc: ManagedProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (!proc.running) throw new Error(`${what}: ${proc.name} exited\n${proc.logTail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms\n${proc.logTail()}`);
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = findBinaries();
  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  const dir = mkdtempSync(join(tmpdir(), "coder-metrics-cp-"));
  const pki = createPki(dir);
  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];

  const etcd = new ManagedProcess("etcd", join(dir, "etcd.log"));
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  mkdirSync(join(dir, "etcd-data"));
  etcd.start(binaries.etcd, [
    `--data-dir=${join(dir, "etcd-data")}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
    "--unsafe-no-fsync=true",
  ]);
  const apiserver = new ManagedProcess("kube-apiserver", join(dir, "kube-apiserver.log"));
  const auditLog = join(dir, "audit.log");
  if (options.audit) {
    // Writes only, once each (when the response is complete), without bodies.
    writeFileSync(
      join(dir, "audit-policy.yaml"),
      stringify({
        apiVersion: "audit.k8s.io/v1",
        kind: "Policy",
        omitStages: ["RequestReceived", "ResponseStarted", "Panic"],
        rules: [
          { level: "Metadata", verbs: ["create", "update", "patch", "delete", "deletecollection"] },
          { level: "None" },
        ],
      }),
    );
  }
  const server = `https://127.0.0.1:${apiPort}`;
  const apiserverArgs = [
    `--etcd-servers=${etcdUrl}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiPort}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${pki.servingCert}`,
    `--tls-private-key-file=${pki.servingKey}`,
    `--client-ca-file=${pki.caCert}`,
    "--authorization-mode=RBAC",
    "--service-cluster-ip-range=10.0.0.0/24",
    "--allow-privileged=true",
    "--service-account-issuer=https://kubernetes.default.svc",
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    // Without kube-controller-manager nobody creates the "default" ServiceAccount
    // that this admission plugin waits for (envtest disables it for the same reason).
    ...(options.controllerManager ? [] : ["--disable-admission-plugins=ServiceAccount"]),
    ...(options.audit
      ? [`--audit-policy-file=${join(dir, "audit-policy.yaml")}`, `--audit-log-path=${auditLog}`]
      : []),
  ];
  const startApiserver = async () => {
    apiserver.start(binaries.kubeApiserver, apiserverArgs);
    await waitFor(
      "kube-apiserver",
      async () => (await httpsStatus(`${server}/readyz`, pki)) === 200,
      readyTimeoutMs,
      apiserver,
    );
  };

  const kubeconfigPath = join(dir, "kubeconfig");
  writeFileSync(kubeconfigPath, kubeconfig(server, pki), { mode: 0o600 });
  let controllerManager: ManagedProcess | undefined;
  try {
    await waitFor(
      "etcd",
      async () =>
        (await fetch(`${etcdUrl}/health`)
          .then((r) => r.ok)
          .catch(() => false)) === true,
      readyTimeoutMs,
      etcd,
    );
    await startApiserver();
    if (options.controllerManager) {
      controllerManager = await startControllerManager({
        binary: binaries.kubeControllerManager,
        kubeconfigPath,
        dir,
        controllers:
          "*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach",
        extraArgs: [
          `--service-account-private-key-file=${pki.serviceAccountKey}`,
          `--root-ca-file=${pki.caCert}`,
        ],
      });
    }
  } catch (err) {
    await Promise.all([apiserver.stop(), etcd.stop()]);
    throw err;
  }

  return {
    dir,
    server,
    kubeconfigPath,
    apiserver,
    etcd,
    controllerManager,
    auditEvents: () =>
      options.audit && existsSync(auditLog)
        ? readFileSync(auditLog, "utf8")
            .split("\n")
            .filter((line) => line !== "")
            .map((line) => JSON.parse(line) as AuditEvent)
        : [],
    compactEtcd: async () => {
      const post = async (path: string, body: unknown) => {
        const response = await fetch(`${etcdUrl}${path}`, {
          method: "POST",
          body: JSON.stringify(body),
        });
        if (!response.ok) throw new Error(`etcd ${path}: HTTP ${response.status}`);
        return (await response.json()) as { header: { revision: string } };
      };
      const { header } = await post("/v3/kv/range", {
        key: Buffer.from("/").toString("base64"),
        limit: 1,
      });
      await post("/v3/kv/compaction", { revision: header.revision, physical: true });
      return Number(header.revision);
    },
    restartApiserver: async () => {
      await apiserver.stop();
      await startApiserver();
    },
    stop: async () => {
      await controllerManager?.stop();
      await apiserver.stop();
      await etcd.stop();
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
