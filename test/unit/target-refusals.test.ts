import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { TargetEvent } from "../../schemas/messages.js";
import { TargetStateFile } from "../../schemas/records.js";
import { validator } from "../../schemas/validate.js";
import type { TargetEngine } from "../../target/engine.js";
import { stateFilePath } from "../../target/store.js";
import { makeHolder } from "../helpers/issuer.js";
import { engineSetup, eventsOf, START_MS, TID } from "./target-engine-setup.js";

const PERIOD_MS = 1000;
const stranger = makeHolder();
const stateFile = validator(TargetStateFile, "target state");

type Setup = ReturnType<typeof engineSetup>;

/** A well-formed frame from `term` whose credential names a key other than the one that signed it. */
function badFrame(s: Setup, engine: TargetEngine, term: string): Buffer {
  return s.frame(engine, { term, holder: stranger.publicKeyB64 });
}

function refusals(events: readonly TargetEvent[], term: string): TargetEvent[] {
  return events.filter((e) => e.type === "auth_refused" && e.term === term);
}

function countOf(events: readonly TargetEvent[]): number {
  return events.reduce((sum, e) => sum + (e.count ?? 1), 0);
}

describe("refused frames", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // Regression (Refusal events coalesced): two terminals sending bad frames at 45/s got a lock
  // disconnected, one auth_refused event per frame taking the target over its own publish budget.
  it("coalesces a burst of 500 bad frames from one terminal into events a period apart whose counts add up to 500", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    const from = s.rec.events.length;
    for (let i = 0; i < 500; i++) {
      engine.handleFrame(badFrame(s, engine, "term-1"), false, "term-1");
      vi.advanceTimersByTime(10);
    }
    vi.advanceTimersByTime(PERIOD_MS);
    const events = refusals(s.rec.events.slice(from), "term-1");
    const first = events[0]?.ts ?? 0;
    const last = events.at(-1)?.ts ?? 0;
    expect(events.length).toBeLessThanOrEqual((last - first) / PERIOD_MS + 1);
    expect(events.slice(1).every((e, i) => e.ts - (events[i]?.ts ?? 0) >= PERIOD_MS)).toBe(true);
    expect(countOf(events)).toBe(500);
    expect(engine.stats().refused_total).toBe(500);
    // The first refusal is reported at once, with the sender the topic names.
    expect(events[0]).toEqual({
      v: 1,
      tid: TID,
      ts: START_MS,
      type: "auth_refused",
      reason: "bad_frame_signature",
      slot: "slot-1",
      term: "term-1",
    });
  });

  it("coalesces each terminal on its own: one terminal's burst does not hide or delay another's refusal", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    const from = s.rec.events.length;
    for (let i = 0; i < 5; i++) engine.handleFrame(Buffer.from("junk"), false, "term-1");
    engine.handleFrame(Buffer.from("junk"), false, "term-2");
    expect(s.rec.events.slice(from).map((e) => [e.type, e.term, e.count])).toEqual([
      ["auth_refused", "term-1", undefined],
      ["auth_refused", "term-2", undefined],
    ]);
    vi.advanceTimersByTime(PERIOD_MS);
    expect(s.rec.events.slice(from).map((e) => [e.type, e.reason, e.term, e.count])).toEqual([
      ["auth_refused", "malformed", "term-1", undefined],
      ["auth_refused", "malformed", "term-2", undefined],
      ["auth_refused", "malformed", "term-1", 4],
    ]);
  });

  it("publishes the refusals still summed up when the target stops", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    const from = s.rec.events.length;
    for (let i = 0; i < 3; i++) engine.handleFrame(Buffer.from("junk"), false, "term-1");
    engine.close();
    expect(countOf(refusals(s.rec.events.slice(from), "term-1"))).toBe(3);
  });
});

describe("verdicts", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("tells each sender why its own frames were refused, on the coalesced beat of the refusal events", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    for (let i = 0; i < 5; i++) engine.handleFrame(badFrame(s, engine, "term-1"), false, "term-1");
    engine.handleFrame(Buffer.from("junk"), false, "term-2");
    expect(s.rec.verdicts).toEqual([
      { term: "term-1", verdict: { v: 1, tid: TID, reason: "bad_frame_signature", ts: START_MS } },
      { term: "term-2", verdict: { v: 1, tid: TID, reason: "malformed", ts: START_MS } },
    ]);
    engine.handleFrame(Buffer.from("junk"), false, "term-1");
    vi.advanceTimersByTime(PERIOD_MS);
    // The rest of term-1's period summed into one verdict with the latest reason.
    expect(s.rec.verdicts.slice(2)).toEqual([
      { term: "term-1", verdict: { v: 1, tid: TID, reason: "malformed", ts: START_MS + PERIOD_MS } },
    ]);
    vi.advanceTimersByTime(10 * PERIOD_MS);
    expect(s.rec.verdicts).toHaveLength(3);
  });

  it("tells a terminal why its session ended", () => {
    const s = engineSetup({ periodMs: PERIOD_MS, timeoutPeriods: 2 });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine), false, "term-1")).toMatchObject({ ok: true });
    expect(s.rec.verdicts).toEqual([]);
    vi.advanceTimersByTime(3 * PERIOD_MS);
    expect(s.rec.verdicts).toEqual([
      { term: "term-1", verdict: { v: 1, tid: TID, reason: "frame_timeout", ts: START_MS + 2 * PERIOD_MS } },
    ]);
  });
});

describe("wrong-key lockout", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // Regression (Wrong-key lockout): a terminal could try wrong keys forever, every try costing a
  // signature check.
  it("locks a terminal out after 10 refusals within 60 s, raises one alarm, and refuses it before any signature", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    const from = s.rec.events.length;
    for (let i = 0; i < 9; i++) {
      expect(engine.handleFrame(badFrame(s, engine, "term-1"), false, "term-1")).toMatchObject({
        reason: "bad_frame_signature",
      });
      vi.advanceTimersByTime(5000);
    }
    expect(eventsOf(s.rec, "lockout", from)).toEqual([]);
    expect(engine.handleFrame(badFrame(s, engine, "term-1"), false, "term-1")).toMatchObject({
      reason: "bad_frame_signature",
    });
    expect(eventsOf(s.rec, "lockout", from)).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS + 45_000,
        type: "lockout",
        reason: "locked_out",
        term: "term-1",
        count: 10,
        until: START_MS + 45_000 + 300_000,
      },
    ]);
    // Even a genuine frame of the locked-out terminal is refused, and counts towards nothing more.
    for (let i = 0; i < 20; i++) {
      expect(engine.handleFrame(s.frame(engine), false, "term-1")).toMatchObject({
        reason: "locked_out",
        check: "lockout",
      });
    }
    expect(eventsOf(s.rec, "lockout", from)).toHaveLength(1);
    // Another terminal keeps working.
    expect(engine.handleFrame(s.frame(engine, { term: "term-2" }), false, "term-2").ok).toBe(true);
  });

  it("does not lock out for refusals spread wider than the window", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    for (let i = 0; i < 30; i++) {
      engine.handleFrame(Buffer.from("junk"), false, "term-1");
      vi.advanceTimersByTime(6_700);
    }
    expect(eventsOf(s.rec, "lockout")).toEqual([]);
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
  });

  it("does not count refusals a genuine key meets through no fault of its holder", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    for (let i = 0; i < 20; i++) {
      const stale = s.frame(engine, {}, { nonce: "C".repeat(22) });
      expect(engine.handleFrame(stale, false, "term-1")).toMatchObject({ reason: "stale_nonce" });
      expect(
        engine.handleFrame(s.frame(engine, { exp: START_MS / 1000 - 1 }), false, "term-1"),
      ).toMatchObject({
        reason: "expired",
      });
    }
    expect(eventsOf(s.rec, "lockout")).toEqual([]);
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
  });

  it("persists the lockout before acting, keeps it across a restart, and ends it by the target's clock", () => {
    const s = engineSetup({ periodMs: PERIOD_MS, lockout: { lockout_refusals: 3, lockout_s: 120 } });
    const first = s.open();
    for (let i = 0; i < 3; i++) first.handleFrame(Buffer.from("junk"), false, "term-1");
    const file = stateFile.parse(JSON.parse(readFileSync(stateFilePath(s.config.state_dir, TID), "utf8")));
    expect(file.lockouts).toEqual({ "term-1": START_MS + 120_000 });
    first.close();

    const second = s.open();
    expect(second.handleFrame(s.frame(second), false, "term-1")).toMatchObject({ reason: "locked_out" });
    vi.advanceTimersByTime(119_999);
    expect(second.handleFrame(s.frame(second), false, "term-1")).toMatchObject({ reason: "locked_out" });
    vi.advanceTimersByTime(1);
    expect(second.handleFrame(s.frame(second), false, "term-1").ok).toBe(true);
  });

  it("locks out the sender of junk naming a victim's serial, never the victim", () => {
    const s = engineSetup({ periodMs: PERIOD_MS });
    const engine = s.open();
    const from = s.rec.events.length;
    // mallory's frames name term-1 in their payload; the broker delivers them on frames/mallory.
    for (let i = 0; i < 30; i++) {
      expect(engine.handleFrame(badFrame(s, engine, "term-1"), false, "mallory")).toMatchObject({
        reason: "term_mismatch",
      });
    }
    // One alarm: what a locked-out sender sends counts towards no further lockout.
    expect(eventsOf(s.rec, "lockout", from).map((e) => e.term)).toEqual(["mallory"]);
    expect(engine.handleFrame(s.frame(engine, { term: "mallory" }), false, "mallory")).toMatchObject({
      reason: "locked_out",
    });
    expect(eventsOf(s.rec, "auth_refused", from).map((e) => e.term)).toEqual(["mallory"]);
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
  });
});
