import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { stateFilePath } from "../../target/store.js";
import { makeIssuer, mintRevocations } from "../helpers/issuer.js";
import { engineSetup, eventsOf, issuer, lastState, START_MS, TID } from "./target-engine-setup.js";

const CMD = "cmd-0123456789abcdef";

describe("one-time unlock", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("opens once for duration_ms with mode unlock, then falls back with unlock_elapsed", () => {
    const s = engineSetup();
    const engine = s.open();
    let unlocksWhenAvailable: unknown;
    const push = s.rec.states.push.bind(s.rec.states);
    s.rec.states.push = (...m) => {
      if (m[0]?.state === "available") {
        const file = JSON.parse(readFileSync(stateFilePath(s.config.state_dir, TID), "utf8")) as {
          unlocks?: unknown;
        };
        unlocksWhenAvailable = file.unlocks;
      }
      return push(...m);
    };
    engine.handleUnlock(s.unlock(engine, { cmd_id: CMD, duration_ms: 3000 }), false);
    expect(unlocksWhenAvailable).toEqual({ [CMD]: START_MS / 1000 + 60 });
    expect(eventsOf(s.rec, "unlock_applied")).toEqual([
      { v: 1, tid: TID, ts: START_MS, type: "unlock_applied", term: "term-1", cmd_id: CMD },
    ]);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      term: "term-1",
      since: START_MS,
      reason: "unlocked",
      mode: "unlock",
    });
    vi.advanceTimersByTime(2999);
    expect(lastState(s.rec)).toMatchObject({ state: "available" });
    vi.advanceTimersByTime(1);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 3000,
      reason: "unlock_elapsed",
    });
    engine.close();
  });

  it("refuses the same cmd_id again with unlock_replayed, also after a restart", () => {
    const s = engineSetup();
    const first = s.open();
    first.handleUnlock(s.unlock(first, { cmd_id: CMD }), false);
    first.handleUnlock(s.unlock(first, { cmd_id: CMD }), false);
    first.close();
    const second = s.open();
    second.handleUnlock(s.unlock(second, { cmd_id: CMD }), false);
    expect(eventsOf(s.rec, "unlock_refused")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "unlock_refused",
        reason: "unlock_replayed",
        term: "term-1",
        cmd_id: CMD,
      },
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "unlock_refused",
        reason: "unlock_replayed",
        term: "term-1",
        cmd_id: CMD,
      },
    ]);
    expect(eventsOf(s.rec, "unlock_applied")).toHaveLength(1);
    second.close();
  });

  it("refuses an unlock bound to an old nonce with stale_nonce: a delayed command is not applied late", () => {
    const s = engineSetup();
    const engine = s.open();
    const late = s.unlock(engine, { cmd_id: CMD });
    vi.advanceTimersByTime(2000);
    engine.handleUnlock(late, false);
    expect(eventsOf(s.rec, "unlock_refused")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS + 2000,
        type: "unlock_refused",
        reason: "stale_nonce",
        term: "term-1",
        cmd_id: CMD,
      },
    ]);
    expect(lastState(s.rec)).toMatchObject({ state: "unavailable" });
    engine.close();
  });

  it("refuses retained, expired, foreign and badly signed unlock commands", () => {
    const s = engineSetup();
    const engine = s.open();
    const now = START_MS / 1000;
    engine.handleUnlock(s.unlock(engine), true);
    engine.handleUnlock(s.unlock(engine, { iat: now - 120, exp: now }), false);
    engine.handleUnlock(s.unlock(engine, { tid: "lock-2" }), false);
    const token = s.unlock(engine).toString();
    const forged = `${token.slice(0, token.lastIndexOf("."))}.${Buffer.alloc(64, 1).toString("base64url")}`;
    engine.handleUnlock(Buffer.from(forged), false);
    engine.handleUnlock(Buffer.from("not a token"), false);
    expect(eventsOf(s.rec, "unlock_refused").map((e) => e.reason)).toEqual([
      "retained_frame",
      "expired",
      "wrong_target",
      "bad_issuer_signature",
      "malformed",
    ]);
    expect(eventsOf(s.rec, "unlock_applied")).toEqual([]);
    engine.close();
  });
});

describe("fleet revocations", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const revocations = (version: number, revoked: { slot: string; below_gen?: number }[] = []) =>
    Buffer.from(mintRevocations(issuer, { version, revoked, iat: START_MS / 1000 }));

  it("acknowledges a list when applied and again when the same version arrives, and ignores an older one", () => {
    const s = engineSetup();
    const engine = s.open();
    engine.handleRevocations(revocations(3));
    engine.handleRevocations(revocations(3)); // the retained copy after a reconnect
    engine.handleRevocations(revocations(2, [{ slot: "slot-1" }])); // a rollback
    expect(eventsOf(s.rec, "revocations_applied")).toEqual([
      { v: 1, tid: TID, ts: START_MS, type: "revocations_applied", version: 3 },
      { v: 1, tid: TID, ts: START_MS, type: "revocations_applied", version: 3 },
    ]);
    expect(engine.stats()).toMatchObject({ revocations_version: 3, revocations_ignored: 1 });
    // The rolled-back list revoked slot-1; it was not applied.
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
    engine.close();
  });

  it("ends the sessions a fleet list invalidates with revoked_fleet", () => {
    const s = engineSetup();
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
    engine.handleRevocations(revocations(1, [{ slot: "slot-1", below_gen: 2 }]));
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS,
      reason: "revoked_fleet",
    });
    expect(eventsOf(s.rec, "session_ended")).toMatchObject([{ reason: "revoked_fleet", term: "term-1" }]);
    engine.close();
  });

  it("answers a list signed by an unknown key with revocations_refused", () => {
    const s = engineSetup();
    const engine = s.open();
    engine.handleRevocations(Buffer.from(mintRevocations(makeIssuer(), { version: 9 })));
    expect(eventsOf(s.rec, "revocations_refused")).toEqual([
      { v: 1, tid: TID, ts: START_MS, type: "revocations_refused", reason: "unknown_issuer" },
    ]);
    expect(engine.stats().revocations_version).toBe(0);
    engine.close();
  });
});
