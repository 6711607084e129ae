import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeIssuer, mintRelay, registryEntry } from "../helpers/issuer.js";
import { engineSetup, eventsOf, lastState, START_MS, TID } from "./target-engine-setup.js";

describe("relay frames and line status", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("opens a relay session on an issuer-signed relay frame once it holds the terminal's online status", () => {
    const s = engineSetup();
    const engine = s.open();
    s.online(engine);
    const decision = engine.handleFrame(s.relay(engine, { seq: 7 }), false, "term-1");
    expect(decision).toEqual({
      ok: true,
      frame: {
        typ: "sparekey-relay+jws",
        mode: "relay",
        term: "term-1",
        slot: "slot-1",
        gen: 1,
        seq: 7,
        exp: undefined,
        opensSession: true,
        usesLeft: undefined,
      },
    });
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: "term-1",
      since: START_MS,
      reason: "frame_accepted",
      mode: "relay",
    });
    expect(s.rec.follows).toEqual(["+term-1"]);
    engine.close();
  });

  it("refuses relay frames with the reason of the first failing check", () => {
    const s = engineSetup({ slots: [registryEntry("slot-1"), registryEntry("slot-2", { min_gen: 3 })] });
    const engine = s.open();
    const stranger = makeIssuer();
    s.online(engine);
    const nonce = engine.challenge().nonce;
    const cases: [string, Buffer][] = [
      ["wrong_target", s.relay(engine, { tid: "lock-2" })],
      ["unknown_slot", s.relay(engine, { slot: "slot-9" })],
      ["old_generation", s.relay(engine, { slot: "slot-2", gen: 2 })],
      ["unknown_issuer", Buffer.from(mintRelay(stranger, { tid: TID, nonce, seq: 100 }))],
      [
        "bad_issuer_signature",
        Buffer.from(
          // Signed by another key under the configured issuer's kid.
          mintRelay(
            { ...stranger.key, kid: s.config.issuer_keys[0]?.kid ?? "" },
            { tid: TID, nonce, seq: 101 },
          ),
        ),
      ],
    ];
    for (const [reason, raw] of cases) {
      const d = engine.handleFrame(raw, false, "term-1");
      expect(d.ok ? "accepted" : d.reason, reason).toBe(reason);
    }
    expect(engine.openSessions()).toEqual([]);
    engine.close();
  });

  it("judges the key server's line before the relay frame's issuer signature", () => {
    const s = engineSetup();
    const engine = s.open();
    const stranger = makeIssuer();
    engine.handleKeyserverStatus(s.keyserverStatus("offline", 1));
    const forged = mintRelay(
      { ...stranger.key, kid: s.config.issuer_keys[0]?.kid ?? "" },
      { tid: TID, nonce: engine.challenge().nonce, seq: 1 },
    );
    expect(engine.handleFrame(Buffer.from(forged), false, "term-1")).toMatchObject({
      ok: false,
      reason: "keyserver_offline",
      check: "line_status",
    });
    engine.close();
  });

  it("refuses a relay frame replayed after the nonce moved on with stale_nonce", () => {
    const s = engineSetup({ timeoutPeriods: 60 });
    const engine = s.open();
    const frame = s.relay(engine);
    vi.advanceTimersByTime(2000); // two rotations: the frame's nonce is neither current nor previous
    expect(engine.handleFrame(frame, false, "term-1")).toEqual({
      ok: false,
      reason: "stale_nonce",
      check: "nonce",
      slot: "slot-1",
      term: "term-1",
    });
    engine.close();
  });

  it("shares one seq line per terminal between stored and relay frames", () => {
    const s = engineSetup();
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, {}, { seq: 50 }), false, "term-1").ok).toBe(true);
    expect(engine.handleFrame(s.relay(engine, { seq: 50 }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "replayed_seq",
    });
    engine.close();
  });

  it("counts registry max_uses for relay sessions", () => {
    const s = engineSetup({ timeoutPeriods: 1, slots: [registryEntry("slot-1", { max_uses: 1 })] });
    const engine = s.open();
    s.online(engine);
    expect(engine.handleFrame(s.relay(engine), false, "term-1")).toMatchObject({
      ok: true,
      frame: { usesLeft: 0 },
    });
    vi.advanceTimersByTime(1000);
    expect(engine.handleFrame(s.relay(engine), false, "term-1")).toMatchObject({
      ok: false,
      reason: "uses_exhausted",
    });
    engine.close();
  });

  it("ends relay sessions with keyserver_offline when the key server goes offline; a stored session survives", () => {
    const s = engineSetup();
    const engine = s.open();
    engine.handleKeyserverStatus(s.keyserverStatus("online", 4));
    s.online(engine, "term-r");
    expect(engine.handleFrame(s.relay(engine, { term: "term-r" }), false, "term-r").ok).toBe(true);
    expect(engine.handleFrame(s.frame(engine, { term: "term-s" }), false, "term-s").ok).toBe(true);
    const mark = s.rec.events.length;
    engine.handleKeyserverStatus(s.keyserverStatus("offline", 4));
    expect(eventsOf(s.rec, "session_ended", mark)).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "session_ended",
        reason: "keyserver_offline",
        slot: "slot-1",
        term: "term-r",
      },
    ]);
    expect(engine.openSessions().map((x) => x.term)).toEqual(["term-s"]);
    expect(lastState(s.rec)).toMatchObject({ state: "available", term: "term-s" });
    // While the key server is offline no relay frame opens a session.
    expect(engine.handleFrame(s.relay(engine, { term: "term-r" }), false, "term-r")).toMatchObject({
      ok: false,
      reason: "keyserver_offline",
    });
    // An older epoch's online (a late message of a previous connection) changes nothing.
    engine.handleKeyserverStatus(s.keyserverStatus("online", 3));
    expect(engine.handleFrame(s.relay(engine, { term: "term-r" }), false, "term-r")).toMatchObject({
      ok: false,
      reason: "keyserver_offline",
    });
    engine.handleKeyserverStatus(s.keyserverStatus("online", 5));
    expect(engine.handleFrame(s.relay(engine, { term: "term-r" }), false, "term-r").ok).toBe(true);
    engine.close();
  });

  it("ends a terminal's session with terminal_offline, ignoring an offline of an older epoch", () => {
    const s = engineSetup();
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine), false, "term-1").ok).toBe(true);
    engine.handleTerminalStatus("term-1", s.status("online", 2000));
    engine.handleTerminalStatus("term-1", s.status("offline", 1000)); // the will of an old connection
    expect(lastState(s.rec)).toMatchObject({ state: "available" });
    engine.handleTerminalStatus("term-1", s.status("offline", 2000));
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS,
      reason: "terminal_offline",
    });
    // Its session ended: the target keeps following its status, so the offline is not forgotten.
    expect(s.rec.follows).toEqual(["+term-1"]);
    expect(engine.handleFrame(s.relay(engine, { epoch: 2000 }), false, "term-1")).toMatchObject({
      ok: false,
      reason: "terminal_offline",
    });
    expect(engine.stats().status_ignored).toBe(1);
    engine.close();
  });

  it("ignores a status for a terminal it does not follow", () => {
    const s = engineSetup();
    const engine = s.open();
    engine.handleTerminalStatus("term-1", s.status("online", 1));
    expect(engine.handleFrame(s.relay(engine), false, "term-1")).toMatchObject({
      ok: false,
      reason: "terminal_status_unknown",
    });
    engine.close();
  });

  it("refuses a relay frame from a terminal whose status it does not hold, and follows that terminal", () => {
    const s = engineSetup();
    const engine = s.open();
    expect(engine.handleFrame(s.relay(engine), false, "term-1")).toMatchObject({
      ok: false,
      reason: "terminal_status_unknown",
      check: "relay_epoch",
    });
    expect(s.rec.follows).toEqual(["+term-1"]);
    engine.handleTerminalStatus("term-1", s.status("online", 1));
    expect(engine.handleFrame(s.relay(engine), false, "term-1").ok).toBe(true);
    engine.close();
  });

  it("refuses a relay frame held back past a cut: the line's new epoch is not the frame's", () => {
    const s = engineSetup();
    const engine = s.open();
    s.online(engine, "term-1", 10);
    const held = s.relay(engine, { epoch: 10 });
    engine.handleTerminalStatus("term-1", s.status("offline", 10));
    expect(engine.handleFrame(held, false, "term-1")).toMatchObject({
      ok: false,
      reason: "terminal_offline",
    });
    engine.handleTerminalStatus("term-1", s.status("online", 11));
    expect(engine.handleFrame(held, false, "term-1")).toMatchObject({ ok: false, reason: "stale_epoch" });
    // An older epoch's status (a late will) changes nothing; frames of the current epoch pass.
    engine.handleTerminalStatus("term-1", s.status("online", 10));
    expect(engine.handleFrame(held, false, "term-1")).toMatchObject({ ok: false, reason: "stale_epoch" });
    expect(engine.handleFrame(s.relay(engine, { epoch: 11 }), false, "term-1").ok).toBe(true);
    engine.close();
  });
});
