import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { writeJsonAtomic } from "../../common/atomic-file.js";
import { silentLogger } from "../../common/log.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { Challenge, TargetEvent, TargetState } from "../../schemas/messages.js";
import type { CredentialPayload, FramePayload } from "../../schemas/tokens.js";
import { TargetEngine } from "../../target/engine.js";
import { emptyState } from "../../target/memory.js";
import { stateFilePath } from "../../target/store.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRegistry,
  type Overrides,
  registryEntry,
} from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

const TID = "lock-1";
const START_MS = Date.UTC(2030, 0, 1);
const issuer = makeIssuer();
const holder = makeHolder();

interface Recorded {
  states: TargetState[];
  events: TargetEvent[];
  challenges: Challenge[];
}

function setup(options: { periodMs?: number; timeoutPeriods?: number } = {}) {
  const config: TargetConfig = {
    v: 1,
    tid: TID,
    broker_url: "mqtt://127.0.0.1:9",
    secret: "x".repeat(32),
    prefix: "sparekey/v1",
    issuer_keys: [issuer.publicKey],
    period_ms: options.periodMs ?? 1000,
    timeout_periods: options.timeoutPeriods ?? 2,
    state_dir: tempDir(),
    keepalive_s: 5,
  };
  const rec: Recorded = { states: [], events: [], challenges: [] };
  let onState: ((s: TargetState) => void) | undefined;
  const open = () => {
    const engine = TargetEngine.open({
      config,
      logger: silentLogger(),
      out: {
        state: (m) => {
          rec.states.push(m);
          onState?.(m);
        },
        event: (m) => rec.events.push(m),
        challenge: (m) => rec.challenges.push(m),
      },
    });
    engine.begin();
    engine.handleRegistry(
      Buffer.from(mintRegistry(issuer, TID, { version: 1, slots: [registryEntry("slot-1")] })),
    );
    return engine;
  };
  return {
    config,
    rec,
    open,
    onState: (f: (s: TargetState) => void) => {
      onState = f;
    },
  };
}

let seq = 0;
function frame(
  engine: TargetEngine,
  cred: Overrides<CredentialPayload> = {},
  overrides: Partial<FramePayload> = {},
): Buffer {
  seq += 1;
  const credential = mintCredential(issuer, { holder: holder.publicKeyB64, tids: [TID], ...cred });
  const payload: FramePayload = {
    v: 1,
    tid: TID,
    slot: "slot-1",
    term: "term-1",
    nonce: engine.challenge().nonce,
    seq,
    cred: credential,
    ...overrides,
  };
  return Buffer.from(mintFrame(holder, payload));
}

function lastState(rec: Recorded): TargetState | undefined {
  return rec.states[rec.states.length - 1];
}

describe("target engine timers and state", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("ends a session with frame_timeout after timeout_periods periods without a good frame", () => {
    const { open, rec } = setup({ periodMs: 1000, timeoutPeriods: 2 });
    const engine = open();
    expect(engine.handleFrame(frame(engine), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(1500);
    expect(engine.handleFrame(frame(engine), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(1999);
    expect(lastState(rec)).toMatchObject({ state: "available" });
    vi.advanceTimersByTime(1);
    expect(lastState(rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 3500,
      reason: "frame_timeout",
    });
    expect(rec.events.filter((e) => e.type === "session_ended")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS + 3500,
        type: "session_ended",
        reason: "frame_timeout",
        slot: "slot-1",
        term: "term-1",
      },
    ]);
    engine.close();
  });

  it("ends a session with expired when its credential's exp passes, on the target's own timer", () => {
    const { open, rec } = setup({ periodMs: 1000, timeoutPeriods: 60 });
    const engine = open();
    const exp = START_MS / 1000 + 5;
    expect(engine.handleFrame(frame(engine, { exp }), false, "term-1")).toMatchObject({
      ok: true,
      frame: { exp },
    });
    vi.advanceTimersByTime(4999);
    expect(lastState(rec)).toMatchObject({ state: "available", slot: "slot-1", term: "term-1" });
    vi.advanceTimersByTime(1);
    expect(lastState(rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 5000,
      reason: "expired",
    });
    engine.close();
  });

  it("persists the counted use before it publishes available", () => {
    const s = setup();
    const engine = s.open();
    let usesWhenAvailable: unknown;
    s.onState((m) => {
      if (m.state !== "available") return;
      const file = JSON.parse(readFileSync(stateFilePath(s.config.state_dir, TID), "utf8")) as {
        uses: Record<string, number>;
      };
      usesWhenAvailable = file.uses;
    });
    const decision = engine.handleFrame(frame(engine, { max_uses: 3 }), false, "term-1");
    expect(decision).toMatchObject({ ok: true, frame: { opensSession: true, usesLeft: 2 } });
    expect(usesWhenAvailable).toEqual({ "slot-1:1": 1 });
    expect(s.rec.events.find((e) => e.type === "auth_established")).toEqual({
      v: 1,
      tid: TID,
      ts: START_MS,
      type: "auth_established",
      slot: "slot-1",
      term: "term-1",
      gen: 1,
      uses_left: 2,
    });
    engine.close();
  });

  it("drops a frame whose write fails and keeps memory as it was: the same frame counts once the disk is back", () => {
    const s = setup();
    const engine = s.open();
    const path = stateFilePath(s.config.state_dir, TID);
    const onDisk = readFileSync(path, "utf8");
    // A non-empty directory where the state file goes: the atomic rename onto it fails.
    rmSync(path);
    mkdirSync(path);
    writeFileSync(join(path, "x"), "");
    const raw = frame(engine, { max_uses: 3 });
    expect(engine.handleFrame(raw, false, "term-1").ok).toBe(true);
    expect(engine.state().state).toBe("unavailable");
    expect(engine.stats()).toMatchObject({ accepted: 0, persist_failures: 1, sessions: 0 });
    rmSync(path, { recursive: true });
    writeFileSync(path, onDisk);
    // Neither the seq nor the use was committed: the very same frame opens with all but one use left.
    expect(engine.handleFrame(raw, false, "term-1")).toMatchObject({
      ok: true,
      frame: { opensSession: true, usesLeft: 2 },
    });
    expect(engine.state()).toMatchObject({ state: "available", uses_left: 2 });
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({
      seqs: { "term-1": expect.any(Number) },
      uses: { "slot-1:1": 1 },
    });
    engine.close();
  });

  it("ends older-generation sessions on a slot when a newer generation is accepted there, staying available", () => {
    const { open, rec } = setup({ timeoutPeriods: 60 });
    const engine = open();
    expect(engine.handleFrame(frame(engine, { term: "term-1" }), false, "term-1").ok).toBe(true);
    const gen2 = frame(engine, { term: "term-2", gen: 2 }, { term: "term-2" });
    expect(engine.handleFrame(gen2, false, "term-2").ok).toBe(true);
    expect(rec.events.filter((e) => e.type === "session_ended")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "session_ended",
        reason: "old_generation",
        slot: "slot-1",
        term: "term-1",
      },
    ]);
    expect(lastState(rec)).toMatchObject({ state: "available", slot: "slot-1", term: "term-2" });
    expect(engine.openSessions().map((x) => [x.term, x.gen])).toEqual([["term-2", 2]]);
    // The old generation is now below the floor.
    expect(engine.handleFrame(frame(engine, { term: "term-1" }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "old_generation",
    });
    engine.close();
  });

  it("refuses a time-limited key when the wall clock is far behind the persisted time floor", () => {
    const s = setup();
    writeJsonAtomic(stateFilePath(s.config.state_dir, TID), {
      ...emptyState(TID),
      time_floor_ms: START_MS + 3_600_000,
    });
    const engine = s.open();
    expect(engine.handleFrame(frame(engine, { exp: START_MS / 1000 + 7200 }), false, "term-1")).toMatchObject(
      {
        ok: false,
        reason: "clock_untrusted",
      },
    );
    // An untimed key still works: the clock is only needed for time limits.
    expect(engine.handleFrame(frame(engine), false, "term-1").ok).toBe(true);
    engine.close();
  });

  it("publishes unavailable with stopping and ends open sessions on close", () => {
    const { open, rec } = setup();
    const engine = open();
    engine.handleFrame(frame(engine), false, "term-1");
    engine.close();
    expect(lastState(rec)).toMatchObject({ state: "unavailable", reason: "stopping" });
    expect(rec.events[rec.events.length - 1]).toMatchObject({ type: "session_ended", reason: "stopping" });
  });

  it("rotates the challenge every period and keeps the previous nonce good", () => {
    const { open, rec } = setup({ periodMs: 1000, timeoutPeriods: 60 });
    const engine = open();
    const first = frame(engine);
    vi.advanceTimersByTime(1000);
    expect(rec.challenges).toHaveLength(2);
    expect(rec.challenges[1]).toEqual({
      v: 1,
      tid: TID,
      nonce: engine.challenge().nonce,
      period_ms: 1000,
      ts: START_MS + 1000,
    });
    expect(engine.handleFrame(first, false, "term-1").ok).toBe(true);
    const second = frame(engine);
    vi.advanceTimersByTime(2000);
    expect(engine.handleFrame(second, false, "term-1")).toMatchObject({ ok: false, reason: "stale_nonce" });
    engine.close();
  });
});
