import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { basename, join, resolve } from "node:path";
import { type Static, Type } from "@sinclair/typebox";
import { parseJson, validator } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";
import type { Logger } from "./log.js";

/** The lock file every locked dir holds while its owner runs. */
export const LOCK_FILE = "sparekey.lock";

export const LockHolder = Type.Object(
  {
    pid: Type.Integer({ minimum: 1 }),
    host: Type.String({ minLength: 1, maxLength: 255 }),
    /** ISO time the holder took the lock. */
    started: Type.String({ minLength: 1, maxLength: 64 }),
    command: Type.String({ maxLength: 1024 }),
    /** Linux boot id: a lock from before a reboot is stale whatever its pid. */
    boot: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type LockHolder = Static<typeof LockHolder>;
const holderValidator = validator(LockHolder, "lock file");

export interface InstanceLock {
  readonly path: string;
  readonly holder: LockHolder;
  /** Remove the lock file if it is still this lock's (idempotent). */
  release(): void;
}

export interface LockOptions {
  /** What the dir is, for messages: "data dir", "target state dir", "terminal dir". */
  what: string;
  /** Shown to a refused second instance (default: this process's command line). */
  command?: string;
  /** Make the dir (0700) when it is missing. */
  createDir?: boolean;
  /** The lock file's name, for a dir several owners share (default LOCK_FILE). */
  file?: string;
  /** Told when a stale lock is taken over. */
  logger?: Logger;
}

/** Lock files this process holds, by path, with their exact content: released at exit whatever happens. */
const held = new Map<string, string>();
let exitHookInstalled = false;

export function lockPath(dir: string, file = LOCK_FILE): string {
  return join(dir, file);
}

function bootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

function defaultCommand(): string {
  const [, script, ...args] = process.argv;
  const name = script ? basename(script).replace(/\.(ts|js)$/, "") : "node";
  return [name, ...args].join(" ").slice(0, 1024);
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} on host ${h.host} since ${h.started} (${h.command})`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Why a lock held by `h` can be taken over, or undefined while its holder may still run. */
function staleReason(h: LockHolder, path: string): string | undefined {
  // Another host's process cannot be checked from here: only a person can say it is gone.
  if (h.host !== hostname()) return undefined;
  const boot = bootId();
  if (h.boot !== undefined && boot !== undefined && h.boot !== boot) return "the host rebooted since";
  if (h.pid === process.pid) return held.has(path) ? undefined : "its pid is now this process's";
  return pidAlive(h.pid) ? undefined : "its process is gone";
}

function readHolder(path: string): { text: string; holder: LockHolder } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const value = parseJson(text);
  if (!holderValidator.is(value))
    throw new SparekeyError(
      "instance_locked",
      `${path} is not a sparekey lock file; remove it if no sparekey process uses this dir`,
    );
  return { text, holder: value };
}

/** Who holds the lock of `dir` now (a stale holder included), or undefined. */
export function readLockHolder(dir: string, file = LOCK_FILE): LockHolder | undefined {
  return readHolder(lockPath(dir, file))?.holder;
}

function writeTemp(path: string, text: string): string {
  const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function releaseAllAtExit(): void {
  for (const [path, text] of held) {
    try {
      if (readFileSync(path, "utf8") === text) unlinkSync(path);
    } catch {
      // Exiting: nothing more can be done about a lock file that is already gone.
    }
  }
  held.clear();
}

/**
 * Take the exclusive lock of `dir` for this process, or refuse (instance_locked) naming the holder.
 * The file appears whole or not at all: written to a temp file, then hard-linked into place, which
 * fails when a lock file exists (the same exclusivity as O_EXCL). A lock whose holder is gone from
 * this host is taken over, with a log line.
 */
export function acquireInstanceLock(dir: string, options: LockOptions): InstanceLock {
  if (options.createDir) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = resolve(lockPath(dir, options.file));
  const boot = bootId();
  const holder: LockHolder = {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    command: (options.command ?? defaultCommand()).slice(0, 1024),
    ...(boot !== undefined ? { boot } : {}),
  };
  const text = `${JSON.stringify(holder)}\n`;
  let tmp: string;
  try {
    tmp = writeTemp(path, text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT")
      throw new SparekeyError("not_found", `${options.what} ${dir} does not exist`);
    throw err;
  }
  try {
    // A few rounds: another process may take over the same stale lock at the same moment.
    for (let round = 0; round < 5; round++) {
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const current = readHolder(path);
        if (!current) continue;
        const stale = staleReason(current.holder, path);
        if (stale === undefined)
          throw new SparekeyError(
            "instance_locked",
            `${options.what} ${dir} is in use by ${describeHolder(current.holder)}; stop that one first`,
          );
        takeOver(path, current.text);
        options.logger?.warn(
          { lock: path, holder: current.holder, why: stale },
          `took over a stale lock of ${options.what} ${dir}`,
        );
        continue;
      }
      held.set(path, text);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.on("exit", releaseAllAtExit);
      }
      return {
        path,
        holder,
        release() {
          if (held.get(path) !== text) return;
          held.delete(path);
          try {
            if (readFileSync(path, "utf8") === text) unlinkSync(path);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
          }
        },
      };
    }
    throw new SparekeyError("instance_locked", `${options.what} ${dir}: could not take its lock ${path}`);
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Move a stale lock file out of the way, unless another process replaced it since it was read: then
 * that process's live lock is put back.
 */
function takeOver(path: string, staleText: string): void {
  const aside = `${path}.${randomBytes(8).toString("hex")}.stale`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (readFileSync(aside, "utf8") !== staleText) {
    try {
      linkSync(aside, path);
    } catch {
      // Yet another process locked in between; its lock stands.
    }
  }
  unlinkSync(aside);
}
