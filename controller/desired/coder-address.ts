// CODER_PROMETHEUS_ADDRESS is host:port; the sidecar reaches coderd over the
// pod's loopback whatever interface coderd binds.
import { type HostPort, splitHostPort } from "../common/address.ts";

export type CoderAddress = HostPort;

/** coderd's listen address; port 0 (any port) cannot be scraped. */
export function parseCoderAddress(address: string): CoderAddress | undefined {
  const parts = splitHostPort(address);
  return parts === undefined || parts.port === 0 ? undefined : parts;
}

/** The URL the exporter scrapes from inside the pod. */
export function upstreamUrl(address: CoderAddress): string {
  const wildcard = ["", "0.0.0.0", "[::]", "::"].includes(address.host);
  const host = wildcard ? "127.0.0.1" : address.host;
  return `http://${host}:${address.port}/metrics`;
}
