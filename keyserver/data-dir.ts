import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { b64url, generateSigningKey } from "../common/keys.js";
import { KeyServerSecret } from "../schemas/keyserver.js";
import type { IssuerKeyFile } from "../schemas/records.js";
import { validator } from "../schemas/validate.js";
import { randomSecret } from "./passwords.js";

export interface DataDirPaths {
  readonly dir: string;
  readonly db: string;
  readonly issuer: string;
  readonly secret: string;
}

export function dataDirPaths(dir: string): DataDirPaths {
  return {
    dir,
    db: join(dir, "sparekey.db"),
    issuer: join(dir, "issuer.json"),
    secret: join(dir, "keyserver.secret"),
  };
}

/**
 * Make the data dir usable: mode 0700, an issuer key and the key server's MQTT secret, each created
 * on first start (mode 0600) and never replaced afterwards.
 */
export function initDataDir(dir: string, now: () => number = Date.now): DataDirPaths {
  const paths = dataDirPaths(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (!existsSync(paths.issuer)) {
    const { key, seed } = generateSigningKey();
    const file: IssuerKeyFile = {
      v: 1,
      keys: [{ kid: key.kid, seed: b64url(seed), created: Math.floor(now() / 1000) }],
      active: key.kid,
    };
    writeJsonAtomic(paths.issuer, file, 0o600);
  }
  if (!existsSync(paths.secret)) writeFileAtomic(paths.secret, `${randomSecret()}\n`, 0o600);
  return paths;
}

export function readKeyServerSecret(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new SparekeyError(
      "config_invalid",
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  // The message names the file, never its content.
  if (!validator(KeyServerSecret, "keyserver.secret").is(text))
    throw new SparekeyError("config_invalid", `${path}: not a key server secret`);
  return text;
}
