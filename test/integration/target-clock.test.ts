import { type ChildProcess, spawn } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { TEST_WALL_OFFSET_ENV } from "../../cli/target.js";
import { readJsonFile } from "../../common/atomic-file.js";
import { TargetStateFile } from "../../schemas/records.js";
import { stateFilePath } from "../../target/store.js";
import { nowSeconds } from "../helpers/issuer.js";
import { tempDir, waitFor } from "../helpers/wait.js";
import { type TargetHarness, TID, targetHarness } from "./target-harness.js";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Two target processes each pay tsx's start-up: generous deadlines for a loaded machine. */
const START_MS = 20_000;

/** A target process whose wall clock is the test's: Date.now plus the offset in a file the test rewrites. */
function clockedTarget(h: TargetHarness) {
  const dir = tempDir("sparekey-clock-");
  const configFile = join(dir, `${TID}.json`);
  const offsetFile = join(dir, "wall-offset-ms");
  writeFileSync(configFile, JSON.stringify(h.config));
  let proc: ChildProcess | undefined;
  const setOffset = (ms: number): void => {
    // Written whole and renamed: the target never reads half an offset.
    writeFileSync(`${offsetFile}.tmp`, String(ms));
    renameSync(`${offsetFile}.tmp`, offsetFile);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((resolve) => p.once("exit", resolve));
    p.kill("SIGKILL");
    await exited;
  };
  onTestFinished(kill);
  setOffset(0);
  return {
    setOffset,
    kill,
    /** Spawn `sparekey target` and wait for its `started` state and first challenge. */
    async start(): Promise<void> {
      const at = h.watcher.mark();
      proc = spawn(
        process.execPath,
        ["--import", "tsx", "cli/sparekey.ts", "target", "--config", configFile, "--log-level", "error"],
        { cwd: ROOT, stdio: "ignore", env: { ...process.env, [TEST_WALL_OFFSET_ENV]: offsetFile } },
      );
      await h.watcher.state((s) => s.reason === "started", {
        from: at,
        what: "the target process's started state",
        timeoutMs: START_MS,
      });
      await h.watcher.challenge(() => true, { from: at, what: "its first challenge", timeoutMs: START_MS });
    },
    persisted(): TargetStateFile | undefined {
      return readJsonFile(stateFilePath(h.config.state_dir, TID), TargetStateFile, "target state");
    },
  };
}

/** A harness whose registry the (process) target will apply as soon as it subscribes. */
async function harness(periodMs: number) {
  const h = await targetHarness({ periodMs });
  await h.publishRegistry(1);
  return { h, target: clockedTarget(h) };
}

async function opened(h: TargetHarness, frame: () => string): Promise<void> {
  const at = h.watcher.mark();
  await h.send(frame());
  await h.event(at.events, (e) => e.type === "auth_established", "the session to open");
}

async function refusal(h: TargetHarness, frame: string): Promise<string | undefined> {
  const at = h.watcher.mark();
  await h.send(frame);
  const e = await h.event(
    at.events,
    (e) => e.type === "auth_refused" || e.type === "auth_established",
    "a decision",
  );
  return e.type === "auth_refused" ? e.reason : "accepted";
}

describe("the target's clock on a whole target process", () => {
  it("refuses an expired key after the clock is stepped back 2 minutes (clock_untrusted, one alarm each way)", {
    timeout: 60_000,
  }, async () => {
    const { h, target } = await harness(1000);
    await target.start();
    const cred = h.credential({ exp: nowSeconds() + 30 });
    await opened(h, () => h.frame({ cred }));

    let at = h.watcher.mark();
    target.setOffset(60_000);
    await h.event(at.events, (e) => e.type === "session_ended", "the session to end at expiry");
    expect(h.events.slice(at.events).find((e) => e.type === "session_ended")?.reason).toBe("expired");

    at = h.watcher.mark();
    target.setOffset(-60_000);
    expect(await refusal(h, h.frame({ cred }))).toBe("clock_untrusted");
    expect(h.events.slice(at.events).filter((e) => e.type === "clock_alarm")).toEqual([
      { v: 1, tid: TID, ts: expect.any(Number), type: "clock_alarm", reason: "clock_untrusted" },
    ]);

    // Trusted wall time back (at or above the target's time): the key is judged, and it has expired.
    at = h.watcher.mark();
    target.setOffset(61_000);
    expect(await refusal(h, h.frame({ cred }))).toBe("expired");
    expect(h.events.slice(at.events).filter((e) => e.type.startsWith("clock_"))).toEqual([
      { v: 1, tid: TID, ts: expect.any(Number), type: "clock_trusted" },
    ]);
  });

  it("refuses an expired key after SIGKILL and a restart with the clock 2 minutes back", {
    timeout: 90_000,
  }, async () => {
    const { h, target } = await harness(1000);
    await target.start();
    const exp = nowSeconds() + 10;
    const cred = h.credential({ exp });
    await opened(h, () => h.frame({ cred }));

    // Time moves on past exp (less than a minute: no periodic write would have kept it).
    let at = h.watcher.mark();
    target.setOffset(30_000);
    await h.event(at.events, (e) => e.type === "session_ended" && e.reason === "expired", "the expiry");
    await waitFor(
      () => (target.persisted()?.time_floor_ms ?? 0) >= exp * 1000,
      "the mark past exp on disk (session changes persist it)",
    );
    await target.kill();

    target.setOffset(30_000 - 120_000);
    at = h.watcher.mark();
    await target.start();
    await h.event(at.events, (e) => e.type === "clock_alarm", "the alarm of a clock behind the mark");
    expect(await refusal(h, h.frame({ cred }))).toBe("clock_untrusted");
    // A key with no time limit keeps working on the untrusted clock.
    expect(await refusal(h, h.frame())).toBe("accepted");
  });

  it("ends a session at its expiry by monotonic time when the wall clock is stepped back during it", {
    timeout: 60_000,
  }, async () => {
    const { h, target } = await harness(150);
    await target.start();
    const cred = h.credential({ exp: nowSeconds() + 2 });
    await opened(h, () => h.frame({ cred }));
    const at = h.watcher.mark();
    target.setOffset(-60_000);
    // The holder keeps sending good frames: only the key's expiry may end the session.
    const pump = setInterval(() => void h.send(h.frame({ cred })).catch(() => undefined), 100);
    onTestFinished(() => clearInterval(pump));
    const ended = await h.event(at.events, (e) => e.type === "session_ended", "the session's end");
    clearInterval(pump);
    expect(ended).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "expired",
      slot: "slot-1",
      term: "term-1",
    });
  });
});
