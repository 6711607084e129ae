import { readFileSync } from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TargetStateFile } from "../../schemas/records.js";
import { validator } from "../../schemas/validate.js";
import { stateFilePath } from "../../target/store.js";
import { registryEntry } from "../helpers/issuer.js";
import { engineSetup, eventsOf, lastState, START_MS, TID } from "./target-engine-setup.js";

const START_S = START_MS / 1000;
const stateFile = validator(TargetStateFile, "target state");

function persisted(stateDir: string) {
  return stateFile.parse(JSON.parse(readFileSync(stateFilePath(stateDir, TID), "utf8")));
}

describe("count-limited keys", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("publishes the uses left in the available state and refuses with uses_exhausted at zero", () => {
    const s = engineSetup({ timeoutPeriods: 1 });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, { max_uses: 2 }), false, "term-1").ok).toBe(true);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: "term-1",
      since: START_MS,
      reason: "frame_accepted",
      mode: "stored",
      uses_left: 1,
    });
    vi.advanceTimersByTime(1000); // frame timeout: the session ends
    expect(engine.handleFrame(s.frame(engine, { max_uses: 2 }), false, "term-1").ok).toBe(true);
    expect(lastState(s.rec)).toMatchObject({ state: "available", uses_left: 0 });
    vi.advanceTimersByTime(1000);
    expect(engine.handleFrame(s.frame(engine, { max_uses: 2 }), false, "term-1")).toEqual({
      ok: false,
      reason: "uses_exhausted",
      check: "uses",
      slot: "slot-1",
      term: "term-1",
    });
    expect(eventsOf(s.rec, "auth_established").map((e) => e.uses_left)).toEqual([1, 0]);
    engine.close();
  });

  it("ends the session that used the last use with uses_exhausted, and an earlier one with frame_timeout", () => {
    const s = engineSetup({ timeoutPeriods: 1 });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, { max_uses: 2 }), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 1000,
      reason: "frame_timeout",
    });
    expect(engine.handleFrame(s.frame(engine, { max_uses: 2 }), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 2000,
      reason: "uses_exhausted",
    });
    expect(eventsOf(s.rec, "session_ended").map((e) => e.reason)).toEqual([
      "frame_timeout",
      "uses_exhausted",
    ]);
    engine.close();
  });

  it("never grants an extra use after a restart: the count was on disk before available", () => {
    const s = engineSetup({ timeoutPeriods: 60 });
    const first = s.open();
    expect(first.handleFrame(s.frame(first, { max_uses: 1 }), false, "term-1").ok).toBe(true);
    // A kill: no close(), nothing more written. Only what was on disk at `available` survives.
    const onDisk = persisted(s.config.state_dir);
    expect(onDisk.uses).toEqual({ "slot-1:1": 1 });
    vi.clearAllTimers();
    const second = s.open();
    expect(second.handleFrame(s.frame(second, { max_uses: 1 }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "uses_exhausted",
      check: "uses",
    });
    second.close();
  });
});

describe("time-limited keys", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refuses a key whose registry nbf is in the future with not_yet_valid", () => {
    const s = engineSetup({ slots: [registryEntry("slot-1", { nbf: START_S + 3600 })] });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine), false, "term-1")).toEqual({
      ok: false,
      reason: "not_yet_valid",
      check: "not_before",
      slot: "slot-1",
      term: "term-1",
    });
    engine.close();
  });

  it("refuses a credential whose nbf is more than the skew ahead with not_yet_valid", () => {
    const s = engineSetup();
    const engine = s.open();
    const nbf = START_S + 3600;
    expect(engine.handleFrame(s.frame(engine, { nbf, exp: nbf + 60 }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "not_yet_valid",
      check: "not_before",
    });
    engine.close();
  });

  it("ends a session open at the registry's exp with expired, without a new frame", () => {
    const s = engineSetup({ periodMs: 10_000, slots: [registryEntry("slot-1", { exp: START_S + 90 })] });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(89_999);
    expect(lastState(s.rec)).toMatchObject({ state: "available" });
    vi.advanceTimersByTime(1);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 90_000,
      reason: "expired",
    });
    engine.close();
  });

  it("starts a first-use limit at the first accepted use and ends the session when it runs out", () => {
    const s = engineSetup({ periodMs: 10_000 });
    const engine = s.open();
    vi.advanceTimersByTime(500);
    let firstUseWhenAvailable: unknown;
    const push = s.rec.states.push.bind(s.rec.states);
    s.rec.states.push = (...m) => {
      if (m[0]?.state === "available") firstUseWhenAvailable = persisted(s.config.state_dir).first_use;
      return push(...m);
    };
    expect(engine.handleFrame(s.frame(engine, { first_use_ttl_s: 120 }), false, "term-1")).toMatchObject({
      ok: true,
      frame: { exp: START_S + 120, firstUseAt: START_MS + 500 },
    });
    expect(firstUseWhenAvailable).toEqual({ "slot-1:1": START_MS + 500 });
    // exp counts from the whole second of the first use: 120 s after START_S.
    vi.advanceTimersByTime(119_499);
    expect(lastState(s.rec)).toMatchObject({ state: "available" });
    vi.advanceTimersByTime(1);
    expect(lastState(s.rec)).toMatchObject({ state: "unavailable", reason: "expired" });
    engine.close();
  });

  it("keeps the first use across a restart, so the key still expires on time", () => {
    const s = engineSetup({ timeoutPeriods: 1 });
    const first = s.open();
    expect(first.handleFrame(s.frame(first, { first_use_ttl_s: 60 }), false, "term-1").ok).toBe(true);
    first.close();
    vi.advanceTimersByTime(30_000);
    const second = s.open();
    // The second use does not restart the limit: the session ends 60 s after the first use.
    expect(second.handleFrame(s.frame(second, { first_use_ttl_s: 60 }), false, "term-1")).toMatchObject({
      ok: true,
      frame: { exp: START_S + 60, firstUseAt: undefined },
    });
    vi.advanceTimersByTime(30_000);
    expect(second.handleFrame(s.frame(second, { first_use_ttl_s: 60 }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "expired",
    });
    expect(persisted(s.config.state_dir).first_use).toEqual({ "slot-1:1": START_MS });
    second.close();
  });

  it("refuses every time-bound key on an untrusted clock and still accepts an untimed one", () => {
    vi.setSystemTime(Date.UTC(2020, 0, 1)); // before the epoch a real clock can show: untrusted
    const s = engineSetup();
    const engine = s.open();
    const now = Math.floor(Date.now() / 1000);
    const limited = [
      { exp: now + 3600 },
      { first_use_ttl_s: 60 },
      { schedule: [{ days: [1, 2, 3, 4, 5, 6, 7], start: "00:00", end: "24:00" }] },
    ];
    for (const cred of limited) {
      expect(engine.handleFrame(s.frame(engine, cred), false, "term-1")).toMatchObject({
        ok: false,
        reason: "clock_untrusted",
      });
    }
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
    engine.close();
  });
});

describe("scheduled keys", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const weekdays = [{ days: [1, 2, 3, 4, 5], start: "09:00", end: "17:00" }];

  it("refuses a key outside its windows, in the target's time zone", () => {
    // Monday 2030-01-07 08:30Z is 09:30 in Berlin but 08:30 in UTC.
    vi.setSystemTime(Date.parse("2030-01-07T08:30:00Z"));
    const berlin = engineSetup({ timeZone: "Europe/Berlin" });
    const inBerlin = berlin.open();
    expect(inBerlin.handleFrame(berlin.frame(inBerlin, { schedule: weekdays }), false, "term-1").ok).toBe(
      true,
    );
    inBerlin.close();
    const utc = engineSetup();
    const inUtc = utc.open();
    expect(inUtc.handleFrame(utc.frame(inUtc, { schedule: weekdays }), false, "term-1")).toEqual({
      ok: false,
      reason: "outside_schedule",
      check: "schedule",
      slot: "slot-1",
      term: "term-1",
    });
    inUtc.close();
  });

  it("ends an open session with schedule_closed at the instant its window closes", () => {
    // Friday 2030-01-11 15:59:20Z is 16:59:20 in Berlin; the window closes at 17:00 local.
    const start = Date.parse("2030-01-11T15:59:20Z");
    vi.setSystemTime(start);
    const s = engineSetup({ timeZone: "Europe/Berlin" });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, { schedule: weekdays }), false, "term-1").ok).toBe(true);
    vi.advanceTimersByTime(39_999);
    expect(lastState(s.rec)).toMatchObject({ state: "available" });
    vi.advanceTimersByTime(1);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: start + 40_000,
      reason: "schedule_closed",
    });
    expect(eventsOf(s.rec, "session_ended")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: start + 40_000,
        type: "session_ended",
        reason: "schedule_closed",
        slot: "slot-1",
        term: "term-1",
      },
    ]);
    engine.close();
  });

  it("refuses to open on a config whose time_zone the runtime does not know", () => {
    const s = engineSetup({ timeZone: "Europe/Atlantis" });
    expect(() => s.open()).toThrow('time_zone "Europe/Atlantis" is not a known IANA time zone');
  });
});
