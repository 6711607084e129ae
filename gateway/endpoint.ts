import { hostname } from "node:os";
import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { MQTTS_PORT } from "../common/mqtt.js";
import { GatewayEndpoint } from "../schemas/config.js";
import { ensureCa } from "./tls.js";

/** Where the gateway last said it can be reached: `sparekey admin` writes this URL into target and fob files. */
export function endpointPath(dataDir: string): string {
  return join(dataDir, "tls", "endpoint.json");
}

export function writeEndpoint(dataDir: string, endpoint: GatewayEndpoint): void {
  writeJsonAtomic(endpointPath(dataDir), endpoint, 0o644);
}

export function readEndpoint(dataDir: string): GatewayEndpoint | undefined {
  return readJsonFile(endpointPath(dataDir), GatewayEndpoint, "gateway endpoint");
}

/**
 * What a target or fob file needs to reach this data dir's gateway over TLS: the URL it last
 * advertised (or the default port on this machine's name, before its first start) and its CA.
 */
export async function gatewayTrust(dataDir: string): Promise<{ url: string; caPem: string }> {
  const endpoint = readEndpoint(dataDir);
  const ca = await ensureCa(dataDir);
  return { url: endpoint?.mqtts_url ?? `mqtts://${hostname()}:${MQTTS_PORT}`, caPem: ca.pem };
}
