// The controller reads its kubeconfig itself (client-go's loading rules) and
// hands only auth plugins, impersonation and proxies to client-node.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, describe, test } from "node:test";
import { stringify } from "yaml";
import { loadClusterAccess } from "../../../controller/operator/kube-config.ts";

const dir = mkdtempSync(join(tmpdir(), "coder-metrics-kubeconfig-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(
  name: string,
  doc: {
    cluster?: Record<string, unknown>;
    user?: Record<string, unknown>;
    current?: string | undefined;
    names?: { cluster?: string; user?: string; context?: string };
  },
): string {
  const n = { cluster: "c", user: "u", context: "ctx", ...doc.names };
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: n.cluster, cluster: { server: "https://10.0.0.1:6443", ...doc.cluster } }],
      users: [{ name: n.user, user: doc.user ?? {} }],
      contexts: [{ name: n.context, context: { cluster: n.cluster, user: n.user } }],
      ...("current" in doc ? { "current-context": doc.current } : { "current-context": n.context }),
    }),
  );
  return path;
}

describe("loadClusterAccess", () => {
  test("a token file and a CA named relative to the kubeconfig's folder", async () => {
    writeFileSync(join(dir, "token"), "s3cret\n");
    writeFileSync(join(dir, "ca.crt"), "CA");
    const path = kubeconfig("relative.yaml", {
      cluster: { "certificate-authority": "ca.crt" },
      user: { tokenFile: "token" },
    });
    const access = await loadClusterAccess(path);
    assert.equal(access.server, "https://10.0.0.1:6443");
    const { tls, headers } = await access.credentials();
    assert.equal(tls.ca?.toString(), "CA");
    assert.equal(headers.Authorization, "Bearer s3cret");
  });

  test("client certificate data, insecure-skip-tls-verify and tls-server-name", async () => {
    const b64 = (s: string) => Buffer.from(s).toString("base64");
    const path = kubeconfig("certs.yaml", {
      cluster: { "insecure-skip-tls-verify": true, "tls-server-name": "kubernetes" },
      user: { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
    });
    const { tls, headers } = await (await loadClusterAccess(path)).credentials();
    assert.equal(tls.cert?.toString(), "CERT");
    assert.equal(tls.key?.toString(), "KEY");
    assert.equal(tls.rejectUnauthorized, false);
    assert.equal(tls.servername, "kubernetes");
    assert.deepEqual(headers, {});
  });

  test("KUBECONFIG's files merge as client-go merges them: the first to set a name wins", async (t) => {
    const first = kubeconfig("merge/first.yaml", {
      current: undefined,
      user: { token: "first" },
      names: { context: "other" },
    });
    const second = kubeconfig("merge/second.yaml", {
      cluster: { server: "https://10.0.0.2:6443" },
      user: { token: "second" },
      current: "ctx",
    });
    const before = process.env.KUBECONFIG;
    t.after(() => {
      if (before === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = before;
    });
    process.env.KUBECONFIG = [first, second].join(delimiter);
    const access = await loadClusterAccess();
    // The current context comes from the second file; its cluster and user "c" and "u" from the first.
    assert.equal(access.server, "https://10.0.0.1:6443");
    assert.equal((await access.credentials()).headers.Authorization, "Bearer first");
  });

  test("an exec plugin goes through client-node's KubeConfig", async () => {
    const path = kubeconfig("exec.yaml", {
      user: {
        exec: {
          apiVersion: "client.authentication.k8s.io/v1",
          command: "sh",
          args: [
            "-c",
            'echo \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-exec"}}\'',
          ],
          interactiveMode: "Never",
        },
      },
    });
    const access = await loadClusterAccess(path);
    assert.equal(access.server, "https://10.0.0.1:6443");
    assert.equal((await access.credentials()).headers.Authorization, "Bearer from-exec");
  });

  test("a context that is not there is a clear error", async () => {
    const path = kubeconfig("missing.yaml", { current: "nope" });
    await assert.rejects(loadClusterAccess(path), /context "nope" not found/);
  });
});
