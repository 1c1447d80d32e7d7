// CODER_PROMETHEUS_ADDRESS is host:port; the sidecar reaches coderd over the
// pod's loopback whatever interface coderd binds.
export interface CoderAddress {
  host: string;
  port: number;
}

export function parseCoderAddress(address: string): CoderAddress | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*):([0-9]{1,5})$/.exec(address.trim());
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? "", port };
}

/** The URL the exporter scrapes from inside the pod. */
export function upstreamUrl(address: CoderAddress): string {
  const wildcard = ["", "0.0.0.0", "[::]", "::"].includes(address.host);
  const host = wildcard ? "127.0.0.1" : address.host;
  return `http://${host}:${address.port}/metrics`;
}
