// Pod IPs for the process kubelet. Loopback addresses (127.0.0.N) cannot be
// used: the API server refuses them in EndpointSlices ("may not be in the
// loopback range"), so Services would never get endpoints. Instead one /24 of
// 198.18.0.0/15 (RFC 2544, benchmarking: never routed on the internet) is made
// local with `ip route add local <cidr> dev lo` — every address in it can be
// bound and reached on this machine, like 127.0.0.0/8. Needs root (CAP_NET_ADMIN).
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";

export interface PodNetwork {
  cidr: string;
  allocate(): string;
  release(ip: string): void;
  close(): void;
}

function ipRoute(args: string[]): void {
  execFileSync("ip", ["route", ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

/** Opens a pod network; `cidr` (a.b.c.0/24) defaults to a random /24 of 198.18.0.0/16. */
export function openPodNetwork(cidr = `198.18.${randomInt(1, 255)}.0/24`): PodNetwork {
  const m = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(cidr);
  if (m === null) throw new Error(`pod network: want an a.b.c.0/24 CIDR, got ${cidr}`);
  const prefix = m[1];
  try {
    ipRoute(["replace", "local", cidr, "dev", "lo"]);
  } catch (err) {
    throw new Error(
      `pod network: could not make ${cidr} local (ip route replace local ${cidr} dev lo): ${String(err)}. ` +
        "The process kubelet needs root (CAP_NET_ADMIN): EndpointSlices refuse loopback pod IPs.",
    );
  }
  const used = new Set<number>();
  return {
    cidr,
    allocate() {
      for (let i = 2; i < 255; i++) {
        if (!used.has(i)) {
          used.add(i);
          return `${prefix}.${i}`;
        }
      }
      throw new Error(`pod network ${cidr} is full`);
    },
    release(ip) {
      used.delete(Number(ip.split(".")[3]));
    },
    close() {
      try {
        ipRoute(["del", "local", cidr, "dev", "lo"]);
      } catch {
        // already gone
      }
    },
  };
}
