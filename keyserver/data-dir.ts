import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { b64url, generateSigningKey } from "../common/keys.js";
import { KeyServerSecret } from "../schemas/keyserver.js";
import type { IssuerKeyFile } from "../schemas/records.js";
import { validator } from "../schemas/validate.js";
import { randomSecret } from "./passwords.js";
import { openSqliteStore } from "./store/sqlite/index.js";

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

/** The files `sparekey init` makes, all of which an initialised data dir has. */
function initialFiles(paths: DataDirPaths): string[] {
  return [paths.issuer, paths.secret, paths.db];
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Refuse (data_dir_missing) a data dir that `sparekey init` (or `sparekey restore`) did not make: a
 * mistyped --data must not quietly become a second key server with an issuer key of its own.
 */
export function requireDataDir(dir: string): DataDirPaths {
  const paths = dataDirPaths(dir);
  if (!isDirectory(dir))
    throw new SparekeyError(
      "data_dir_missing",
      `data dir ${dir} does not exist; make one with \`sparekey init --data ${dir}\` (or restore a backup)`,
    );
  const missing = initialFiles(paths).filter((f) => !existsSync(f));
  if (missing.length > 0)
    throw new SparekeyError(
      "data_dir_missing",
      `data dir ${dir} is not initialised (no ${missing.map((f) => basename(f)).join(", ")}); ` +
        `make one with \`sparekey init --data DIR\` (or restore a backup)`,
    );
  return paths;
}

export interface InitializedDataDir extends DataDirPaths {
  /** The issuer key's id. */
  readonly kid: string;
}

/**
 * Make a new data dir (mode 0700): the key server's MQTT secret, the SQLite store and the issuer key,
 * each 0600, the issuer key last. Refuses (already_exists) a dir that holds anything: an issuer key
 * is never replaced, and someone else's folder is never taken over.
 */
export async function initDataDir(dir: string, now: () => number = Date.now): Promise<InitializedDataDir> {
  const paths = dataDirPaths(dir);
  if (existsSync(dir)) {
    if (!isDirectory(dir)) throw new SparekeyError("already_exists", `${dir} exists and is not a directory`);
    const present = initialFiles(paths).filter((f) => existsSync(f));
    if (present.length > 0)
      throw new SparekeyError(
        "already_exists",
        `data dir ${dir} is already initialised (has ${present.map((f) => basename(f)).join(", ")}); ` +
          "init never replaces an issuer key",
      );
    if (readdirSync(dir).length > 0)
      throw new SparekeyError(
        "already_exists",
        `${dir} is not empty; a new data dir goes into a missing or empty dir`,
      );
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeFileAtomic(paths.secret, `${randomSecret()}\n`, 0o600);
  const store = openSqliteStore(paths.db, { now });
  await store.close();
  const { key, seed } = generateSigningKey();
  const file: IssuerKeyFile = {
    v: 1,
    keys: [{ kid: key.kid, seed: b64url(seed), created: Math.floor(now() / 1000) }],
    active: key.kid,
  };
  writeJsonAtomic(paths.issuer, file, 0o600);
  return { ...paths, kid: key.kid };
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
