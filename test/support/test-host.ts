// A test host of our own: a network namespace joined to this machine by a
// veth pair, with addresses from 198.18.0.0/15 (RFC 2544's benchmarking
// range, never routed). Kubernetes refuses loopback addresses in Endpoints
// and EndpointSlices, so a process that must be discovered like a pod runs
// here, and Prometheus on the host reaches it over the veth — traffic that
// never leaves the machine. Needs root (CAP_NET_ADMIN) and iproute2.
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";

export interface TestHost {
  /** The namespace's first address (more with addAddress). */
  address: string;
  /** The host side of the veth: how the namespace reaches this machine. */
  hostAddress: string;
  namespace: string;
  /** Adds another address on the host's interface (e.g. one per pod). */
  addAddress(): string;
  /** Runs a command inside the namespace. */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
  close(): void;
}

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function createTestHost(): TestHost {
  const id = randomBytes(3).toString("hex");
  const namespace = `cm-${id}`;
  const hostIf = `cmh${id}`;
  const podIf = `cmp${id}`;
  const prefix = `198.${18 + randomInt(0, 2)}.${randomInt(0, 256)}`;
  const hostAddress = `${prefix}.1`;
  let next = 2;
  try {
    ip(["netns", "add", namespace]);
    ip(["link", "add", hostIf, "type", "veth", "peer", "name", podIf]);
    ip(["link", "set", podIf, "netns", namespace]);
    ip(["addr", "add", `${hostAddress}/24`, "dev", hostIf]);
    ip(["link", "set", hostIf, "up"]);
    ip(["netns", "exec", namespace, "ip", "link", "set", "lo", "up"]);
    ip(["netns", "exec", namespace, "ip", "link", "set", podIf, "up"]);
  } catch (err) {
    try {
      ip(["netns", "del", namespace]);
    } catch {}
    throw new Error(
      `could not create test host ${namespace} (needs root and iproute2): ${String(err)}`,
    );
  }
  const addAddress = () => {
    if (next > 254) throw new Error(`test host ${namespace} is out of addresses`);
    const address = `${prefix}.${next++}`;
    ip(["netns", "exec", namespace, "ip", "addr", "add", `${address}/24`, "dev", podIf]);
    return address;
  };
  return {
    address: addAddress(),
    hostAddress,
    namespace,
    addAddress,
    spawn: (command, args, options = {}) =>
      spawn("ip", ["netns", "exec", namespace, command, ...args], options),
    close: () => {
      try {
        ip(["netns", "del", namespace]); // takes the veth pair with it
      } catch {}
    },
  };
}
