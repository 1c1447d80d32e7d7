// Personal data stays behind the exporter. coderd's own /metrics carries user
// names, workspace owners and e-mail addresses as label values; the exporter
// hashes or drops them (spec.exporter.config.pii). That is only a boundary if
// nothing else can read coderd's endpoint: with pii configured coderd listens
// on the Pod's loopback (the sidecar shares it), the Service and the scrape
// annotations carry only the exporter's port, and the CRD refuses
// monitor.target: Coderd. A non-loopback address the user keeps (existingSettings:
// Respect) is reported, never silently accepted.
import { BlockList, isIPv4, isIPv6 } from "node:net";
import type { V1Container } from "@kubernetes/client-node";
import type { CoderMetricsSpec } from "../api/v1alpha1.ts";
import { splitHostPort } from "../common/address.ts";
import type { CoderAddress } from "./coder-address.ts";

/** Is the exporter asked to protect personal data? Then coderd must not be reachable from outside the Pod. */
export function piiConfigured(spec: Pick<CoderMetricsSpec, "exporter">): boolean {
  return spec.exporter.config.pii !== undefined;
}

const loopback = new BlockList();
loopback.addSubnet("127.0.0.0", 8, "ipv4");
loopback.addAddress("::1", "ipv6");
loopback.addSubnet("::ffff:127.0.0.0", 104, "ipv6");

/** A host of host:port ("[::1]", "127.0.0.1", "localhost", "" …) that only the Pod itself can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (bare === "localhost") return true;
  if (isIPv4(bare)) return loopback.check(bare, "ipv4");
  if (isIPv6(bare)) return loopback.check(bare, "ipv6");
  return false; // "", 0.0.0.0, ::, a name: every interface or unknown
}

/** spec.coder.address with its host made loopback (the port kept): what coderd gets with pii. */
export function loopbackAddress(address: string): string {
  const parts = splitHostPort(address);
  if (parts === undefined || isLoopbackHost(parts.host)) return address;
  return `127.0.0.1:${parts.port}`;
}

/** The address coderd's `--prometheus-address` flag sets, which wins over the env (Coder's serpent options). */
export function coderdAddressFlag(
  container: Pick<V1Container, "command" | "args">,
): string | undefined {
  const words = [...(container.command ?? []), ...(container.args ?? [])];
  let found: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? "";
    if (w.startsWith("--prometheus-address=")) found = w.slice("--prometheus-address=".length);
    else if (w === "--prometheus-address" && i + 1 < words.length) found = words[++i];
  }
  return found;
}

export interface PiiExposure {
  /** Exposed: coderd serves raw metrics beyond the Pod; Unknown: its address cannot be read here. */
  status: "Exposed" | "Unknown";
  message: string;
}

/**
 * With pii configured, where coderd actually listens. `address` is the effective
 * CODER_PROMETHEUS_ADDRESS (ours, or the user's kept one; undefined when it comes
 * from valueFrom and cannot be read).
 */
export function piiExposure(
  spec: Pick<CoderMetricsSpec, "exporter">,
  coderd: Pick<V1Container, "command" | "args">,
  address: CoderAddress | undefined,
  userAddress: string | undefined,
): PiiExposure | undefined {
  if (!piiConfigured(spec)) return undefined;
  const flag = coderdAddressFlag(coderd);
  if (flag !== undefined) {
    const parts = splitHostPort(flag);
    if (parts !== undefined && isLoopbackHost(parts.host)) return undefined;
    return {
      status: "Exposed",
      message: `coderd's --prometheus-address=${flag} (in the container's args) serves raw metrics with personal data beyond the Pod; remove the flag so coder-metrics can keep coderd on loopback`,
    };
  }
  if (address === undefined) {
    return {
      status: "Unknown",
      message:
        "the coderd container sets CODER_PROMETHEUS_ADDRESS from a reference (valueFrom) that cannot be checked; make it a loopback address (127.0.0.1:<port>), remove it, or set spec.coder.existingSettings: Override",
    };
  }
  if (isLoopbackHost(address.host)) return undefined;
  return {
    status: "Exposed",
    message: `the coderd container sets CODER_PROMETHEUS_ADDRESS=${userAddress ?? `${address.host}:${address.port}`} itself (kept under existingSettings: Respect): anyone who can reach the Pod reads the raw user names and e-mail addresses on port ${address.port}; remove it, make it 127.0.0.1:${address.port}, or set spec.coder.existingSettings: Override`,
  };
}

export interface PiiConditionInput {
  status: "True" | "False" | "Unknown";
  reason: "LoopbackOnly" | "PIIExposed" | "AddressUnknown";
  message: string;
}

/** The PIIProtected condition from each configured Deployment's exposure; undefined without pii. */
export function piiCondition(
  spec: Pick<CoderMetricsSpec, "exporter">,
  deployments: ReadonlyArray<{ name: string; exposure: PiiExposure | undefined }>,
): PiiConditionInput | undefined {
  if (!piiConfigured(spec)) return undefined;
  const exposed = deployments.filter((d) => d.exposure?.status === "Exposed");
  if (exposed.length > 0) {
    return {
      status: "False",
      reason: "PIIExposed",
      message: exposed.map((d) => `Deployment ${d.name}: ${d.exposure?.message}`).join("; "),
    };
  }
  const unknown = deployments.filter((d) => d.exposure?.status === "Unknown");
  if (unknown.length > 0) {
    return {
      status: "Unknown",
      reason: "AddressUnknown",
      message: unknown.map((d) => `Deployment ${d.name}: ${d.exposure?.message}`).join("; "),
    };
  }
  return {
    status: "True",
    reason: "LoopbackOnly",
    message:
      deployments.length > 0
        ? `coderd serves raw metrics on the Pod's loopback only (${deployments.map((d) => d.name).join(", ")}); the Service and annotations expose the exporter's port alone`
        : "no configured Deployment yet; coderd will listen on loopback only",
  };
}
