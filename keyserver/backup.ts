import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import Database from "better-sqlite3";
import { SparekeyError } from "../common/errors.js";
import { acquireInstanceLock, LOCK_FILE } from "../common/instance-lock.js";
import type { Logger } from "../common/log.js";
import { type DataDirPaths, dataDirPaths, readKeyServerSecret, requireDataDir } from "./data-dir.js";
import { Issuer } from "./issuer.js";

/**
 * A backup is a data dir of its own (mode 0700, files 0600): the database from SQLite's online
 * backup, every other regular file of the data dir copied (issuer key, key server secret, a `tls/`
 * folder, …). Restoring is copying it into an empty data dir, the issuer key last.
 */

export interface CopiedDir {
  /** The dir written. */
  dir: string;
  /** Every file in it, relative, sorted. */
  files: string[];
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isEmptyDir(path: string): boolean {
  try {
    return statSync(path).isDirectory() && readdirSync(path).length === 0;
  } catch {
    return false;
  }
}

/** The files the online backup stands for, or that belong to a running process, never copied as they are. */
function isLive(paths: DataDirPaths, name: string): boolean {
  const db = basename(paths.db);
  return (
    name === db ||
    name.startsWith(`${db}-`) ||
    name === LOCK_FILE ||
    name.startsWith(`${LOCK_FILE}.`) ||
    name.endsWith(".tmp")
  );
}

/** Copy the regular files (and folders of them) under `src` into `dst`: folders 0700, files 0600. */
function copyTree(src: string, dst: string, skip: (name: string) => boolean, rel = ""): string[] {
  const copied: string[] = [];
  for (const name of readdirSync(src).sort()) {
    if (rel === "" && skip(name)) continue;
    const from = join(src, name);
    const to = join(dst, name);
    let stat: ReturnType<typeof statSync>;
    try {
      stat = statSync(from);
    } catch {
      continue; // a dangling link or a file removed meanwhile: nothing to copy
    }
    if (stat.isDirectory()) {
      mkdirSync(to, { mode: 0o700 });
      copied.push(...copyTree(from, to, skip, rel === "" ? name : `${rel}/${name}`));
      fsyncPath(to);
    } else if (stat.isFile()) {
      copyFileSync(from, to, constants.COPYFILE_EXCL);
      chmodSync(to, 0o600);
      fsyncPath(to);
      copied.push(rel === "" ? name : `${rel}/${name}`);
    }
  }
  return copied;
}

/** Fails (internal_error) unless SQLite finds `path` sound; leaves it a single file (journal mode DELETE). */
function checkDatabase(path: string, what: string): void {
  const db = new Database(path, { fileMustExist: true });
  try {
    db.pragma("journal_mode = DELETE");
    const result: unknown = db.pragma("quick_check", { simple: true });
    if (result !== "ok")
      throw new SparekeyError("internal_error", `${what} ${path}: database check failed (${String(result)})`);
  } finally {
    db.close();
  }
}

/**
 * A consistent copy of `dataDir` into `out` (missing or empty), safe while a gateway runs: SQLite's
 * online backup for the database, then the other files. Written beside `out` and renamed into place,
 * so `out` is either a whole backup or absent.
 */
export async function backupDataDir(dataDir: string, out: string): Promise<CopiedDir> {
  const paths = requireDataDir(dataDir);
  if (existsSync(out) && !isEmptyDir(out))
    throw new SparekeyError(
      "already_exists",
      `${out} exists and is not an empty dir; back up into a new one`,
    );
  mkdirSync(dirname(out), { recursive: true, mode: 0o700 });
  const stage = `${out}.${randomBytes(6).toString("hex")}.partial`;
  mkdirSync(stage, { mode: 0o700 });
  try {
    const dbCopy = join(stage, basename(paths.db));
    // 0600 before SQLite writes a byte into it: the database holds password hashes.
    closeSync(openSync(dbCopy, "wx", 0o600));
    const db = new Database(paths.db, { fileMustExist: true });
    try {
      db.pragma("busy_timeout = 5000");
      await db.backup(dbCopy);
    } finally {
      db.close();
    }
    checkDatabase(dbCopy, "backup");
    chmodSync(dbCopy, 0o600);
    fsyncPath(dbCopy);
    // After the database: the issuer key file only gains keys, so this copy verifies every token in it.
    const files = [basename(paths.db), ...copyTree(dataDir, stage, (name) => isLive(paths, name))].sort();
    fsyncPath(stage);
    renameSync(stage, out);
    fsyncPath(dirname(out));
    return { dir: out, files };
  } catch (err) {
    rmSync(stage, { recursive: true, force: true });
    throw err;
  }
}

/** Refuse (not_found) a dir that is not a backup; the issuer key, secret and database must all read. */
function checkBackup(from: string): DataDirPaths {
  const paths = dataDirPaths(from);
  const missing = [paths.issuer, paths.secret, paths.db].filter((f) => !existsSync(f));
  if (missing.length > 0)
    throw new SparekeyError(
      "not_found",
      `${from} is not a sparekey backup (no ${missing.map((f) => basename(f)).join(", ")})`,
    );
  Issuer.load(paths.issuer);
  readKeyServerSecret(paths.secret);
  return paths;
}

export interface RestoreOptions {
  /** Replace what the data dir holds. */
  force?: boolean;
  logger?: Logger;
}

/**
 * Bring a backup into `dataDir` (missing or empty, or anything with `force`), holding the data dir's
 * lock meanwhile: refused while a gateway runs on it. The issuer key is copied last, so an interrupted
 * restore leaves a dir every command refuses as not initialised.
 */
export function restoreDataDir(from: string, dataDir: string, options: RestoreOptions = {}): CopiedDir {
  const backup = checkBackup(from);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const lock = acquireInstanceLock(dataDir, {
    what: "data dir",
    command: `sparekey restore --from ${from}`,
    createDir: true,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  try {
    const existing = readdirSync(dataDir).filter((name) => name !== LOCK_FILE);
    if (existing.length > 0 && !options.force)
      throw new SparekeyError(
        "already_exists",
        `data dir ${dataDir} is not empty (${existing.sort().join(", ")}); restore into an empty one, or add --force to replace it`,
      );
    for (const name of existing) rmSync(join(dataDir, name), { recursive: true, force: true });
    chmodSync(dataDir, 0o700);
    const issuer = basename(backup.issuer);
    const files = copyTree(from, dataDir, (name) => name === issuer || name === LOCK_FILE);
    checkDatabase(dataDirPaths(dataDir).db, "restored");
    copyTree(from, dataDir, (name) => name !== issuer);
    fsyncPath(dataDir);
    return { dir: dataDir, files: [...files, issuer].sort() };
  } finally {
    lock.release();
  }
}
