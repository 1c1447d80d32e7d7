// host:port, the one parser behind every listen and upstream address.
import { UsageError } from "./flags.ts";

export interface HostPort {
  /** As written, IPv6 brackets kept ("[::1]"); "" for ":port". */
  host: string;
  port: number;
}

/** "host:port", ":port" or "[v6]:port" → parts; undefined when it is not one. */
export function splitHostPort(text: string): HostPort | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]*):([0-9]{1,5})$/.exec(text.trim());
  if (match === null) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  return { host: match[1] ?? "", port };
}

/** A listen flag: "" means every interface, brackets removed for node:net. */
export function parseListen(flag: string, text: string): HostPort {
  const parts = splitHostPort(text);
  if (parts === undefined) throw new UsageError(`--${flag}: expected host:port, got "${text}"`);
  const host = parts.host.replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? "0.0.0.0" : host, port: parts.port };
}
