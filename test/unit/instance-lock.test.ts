import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import {
  acquireInstanceLock,
  LOCK_FILE,
  type LockHolder,
  readLockHolder,
} from "../../common/instance-lock.js";
import { tempDir } from "../helpers/wait.js";

/** The pid of a process that has exited: nothing runs under it (until the system reuses it). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", ""]);
  if (child.pid === undefined) throw new Error("no child pid");
  return child.pid;
}

function writeLock(dir: string, holder: LockHolder): void {
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(holder));
}

function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof SparekeyError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("not refused");
}

function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: "warn" },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe("instance locks", () => {
  it("writes the holder (pid, host, start time, command) and removes the file on release", () => {
    const dir = tempDir();
    const lock = acquireInstanceLock(dir, { what: "data dir", command: "sparekey gateway --data d" });
    expect(readLockHolder(dir)).toEqual({
      pid: process.pid,
      host: hostname(),
      started: lock.holder.started,
      command: "sparekey gateway --data d",
      ...(lock.holder.boot !== undefined ? { boot: lock.holder.boot } : {}),
    });
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("refuses a second owner naming the holder, and lets one in after the release", () => {
    const dir = tempDir();
    const first = acquireInstanceLock(dir, { what: "data dir", command: "sparekey gateway" });
    expect(refusal(() => acquireInstanceLock(dir, { what: "data dir", command: "second" }))).toEqual({
      code: "instance_locked",
      message: `data dir ${dir} is in use by pid ${process.pid} on host ${hostname()} since ${first.holder.started} (sparekey gateway); stop that one first`,
    });
    first.release();
    const second = acquireInstanceLock(dir, { what: "data dir", command: "second" });
    expect(readLockHolder(dir)?.command).toBe("second");
    second.release();
  });

  it("takes over a lock whose process is gone from this host, with a log line", () => {
    const dir = tempDir();
    const pid = deadPid();
    const stale = { pid, host: hostname(), started: "2024-01-01T00:00:00.000Z", command: "sparekey gateway" };
    writeLock(dir, stale);
    const { logger, lines } = capturingLogger();
    const lock = acquireInstanceLock(dir, { what: "data dir", command: "sparekey gateway", logger });
    expect(readLockHolder(dir)?.pid).toBe(process.pid);
    expect(lines).toEqual([
      expect.objectContaining({
        msg: `took over a stale lock of data dir ${dir}`,
        holder: stale,
        why: "its process is gone",
      }),
    ]);
    lock.release();
  });

  it("takes over a lock left in this process's pid by an earlier process (a container's pid 1)", () => {
    const dir = tempDir();
    writeLock(dir, { pid: process.pid, host: hostname(), started: "2024-01-01T00:00:00.000Z", command: "x" });
    const lock = acquireInstanceLock(dir, { what: "data dir" });
    expect(readLockHolder(dir)?.started).toBe(lock.holder.started);
    lock.release();
  });

  it("never takes over another host's lock, whose process cannot be checked from here", () => {
    const dir = tempDir();
    const other = {
      pid: deadPid(),
      host: `not-${hostname()}`,
      started: "2024-01-01T00:00:00.000Z",
      command: "g",
    };
    writeLock(dir, other);
    expect(refusal(() => acquireInstanceLock(dir, { what: "data dir" })).code).toBe("instance_locked");
    expect(readLockHolder(dir)).toEqual(other);
  });

  it("refuses a lock file it cannot read rather than guessing it is stale", () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), "{not json");
    expect(refusal(() => acquireInstanceLock(dir, { what: "data dir" }))).toEqual({
      code: "instance_locked",
      message: `${join(dir, LOCK_FILE)} is not a sparekey lock file; remove it if no sparekey process uses this dir`,
    });
  });

  it("a release leaves alone a lock file another owner wrote since", () => {
    const dir = tempDir();
    const lock = acquireInstanceLock(dir, { what: "data dir" });
    const other = { pid: deadPid(), host: "elsewhere", started: "2024-01-01T00:00:00.000Z", command: "g" };
    writeLock(dir, other);
    lock.release();
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toEqual(other);
  });
});
