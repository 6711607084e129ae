import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { makeIssuer, mintCredential, mintRelay } from "../helpers/issuer.js";
import { engineSetup, eventsOf, holder, issuer, lastState, START_MS, TID } from "./target-engine-setup.js";

describe("the user behind a terminal, as the issuer vouches for it", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(START_MS);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("carries a stored credential's user into the available state, auth_established and session_ended", () => {
    const s = engineSetup({ periodMs: 1000, timeoutPeriods: 2 });
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, { user: "alice" }), false, "term-1").ok).toBe(true);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: "term-1",
      user: "alice",
      since: START_MS,
      reason: "frame_accepted",
      mode: "stored",
    });
    vi.advanceTimersByTime(2000);
    expect([...eventsOf(s.rec, "auth_established"), ...eventsOf(s.rec, "session_ended")]).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "auth_established",
        slot: "slot-1",
        term: "term-1",
        user: "alice",
        gen: 1,
      },
      {
        v: 1,
        tid: TID,
        ts: START_MS + 2000,
        type: "session_ended",
        reason: "frame_timeout",
        slot: "slot-1",
        term: "term-1",
        user: "alice",
      },
    ]);
    expect(lastState(s.rec)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: START_MS + 2000,
      reason: "frame_timeout",
    });
    engine.close();
  });

  it("names no user for a fob's credential (it has none)", () => {
    const s = engineSetup();
    const engine = s.open();
    expect(engine.handleFrame(s.frame(engine, { mode: "fob" }), false, "term-1").ok).toBe(true);
    expect(lastState(s.rec)).not.toHaveProperty("user");
    expect(eventsOf(s.rec, "auth_established")[0]).not.toHaveProperty("user");
    engine.close();
  });

  it("carries a relay frame's user into the state and the event once its issuer signature verified", () => {
    const s = engineSetup();
    const engine = s.open();
    s.online(engine);
    expect(engine.handleFrame(s.relay(engine, { user: "bob" }), false, "term-1").ok).toBe(true);
    expect(lastState(s.rec)).toMatchObject({
      state: "available",
      term: "term-1",
      user: "bob",
      mode: "relay",
    });
    expect(eventsOf(s.rec, "auth_established")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: START_MS,
        type: "auth_established",
        slot: "slot-1",
        term: "term-1",
        user: "bob",
        gen: 1,
      },
    ]);
    engine.close();
  });

  it("names the user in a refusal only from a verified credential that names the sender", () => {
    const s = engineSetup();
    const engine = s.open();
    const stranger = makeIssuer();
    const nonce = () => engine.challenge().nonce;
    const past = START_MS / 1000 - 10;
    // Verified by the configured issuer, then refused later in the list: the user is vouched for.
    engine.handleFrame(s.frame(engine, { user: "alice", exp: past }), false, "term-1");
    // A stranger's credential claims a user: the target never reads it.
    const forged = mintCredential(stranger, {
      holder: holder.publicKeyB64,
      tids: [TID],
      term: "term-2",
      user: "alice",
    });
    engine.handleFrame(s.frame(engine, { term: "term-2" }, { cred: forged }), false, "term-2");
    // A verified credential sent by another terminal than the one it names: not that user's door.
    const carol = mintCredential(issuer, {
      holder: holder.publicKeyB64,
      tids: [TID],
      term: "term-3",
      user: "carol",
    });
    expect(engine.handleFrame(s.frame(engine, { term: "term-3" }, { cred: carol }), false, "term-3").ok).toBe(
      true,
    );
    engine.handleFrame(s.frame(engine, { term: "term-3" }, { cred: carol }), false, "term-4");
    // A relay frame's signature is its last check: a refused one names no user.
    s.online(engine, "term-5");
    engine.handleFrame(
      Buffer.from(
        mintRelay(
          { ...stranger.key, kid: issuer.key.kid },
          { tid: TID, nonce: nonce(), term: "term-5", user: "bob", seq: 99 },
        ),
      ),
      false,
      "term-5",
    );
    // The second refusal of term-5 within a period is summed up and published at the period's end.
    vi.advanceTimersByTime(1000);
    const refusals = eventsOf(s.rec, "auth_refused").map(({ term, reason, user }) => ({
      term,
      reason,
      user,
    }));
    expect(refusals).toEqual([
      { term: "term-1", reason: "expired", user: "alice" },
      { term: "term-2", reason: "unknown_issuer", user: undefined },
      { term: "term-4", reason: "term_mismatch", user: undefined },
      { term: "term-5", reason: "terminal_status_unknown", user: undefined },
      { term: "term-5", reason: "bad_issuer_signature", user: undefined },
    ]);
    expect(
      eventsOf(s.rec, "auth_refused")
        .filter((e) => e.term !== "term-1")
        .some((e) => "user" in e),
    ).toBe(false);
    engine.close();
  });
});
