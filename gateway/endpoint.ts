import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { GatewayEndpoint } from "../schemas/config.js";

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
