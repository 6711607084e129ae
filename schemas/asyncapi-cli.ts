import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildAsyncApi } from "./asyncapi.js";

/** Writes docs/asyncapi.json: `npx tsx schemas/asyncapi-cli.ts`. */
export const ASYNCAPI_PATH = fileURLToPath(new URL("../docs/asyncapi.json", import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(ASYNCAPI_PATH, `${JSON.stringify(buildAsyncApi(), null, 2)}\n`);
  // The file is checked by `biome check .` like any source; the test compares parsed JSON, not layout.
  execFileSync("npx", ["biome", "format", "--write", ASYNCAPI_PATH], { stdio: "ignore" });
  process.stdout.write(`wrote ${ASYNCAPI_PATH}\n`);
}
