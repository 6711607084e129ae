import { describe, expect, it } from "vitest";
import { mintRevocations, registryEntry } from "../helpers/issuer.js";
import { waitFor } from "../helpers/wait.js";
import { type TargetHarness, TID, targetHarness } from "./target-harness.js";

/** A target on a real broker with slot-1 (and slot-2, max 1 use) registered; 1 s periods, 2 s frame timeout. */
async function ready(): Promise<TargetHarness> {
  const h = await targetHarness({ periodMs: 1000 });
  await h.publishRegistry(1, [registryEntry("slot-1"), registryEntry("slot-2", { max_uses: 1 })]);
  const mark = h.events.length;
  await h.startTarget();
  await h.event(mark, (e) => e.type === "registry_applied", "registry_applied");
  await waitFor(() => h.nonce().length === 22, "a challenge");
  return h;
}

describe("target relay sessions over MQTT", () => {
  it("opens a relay session and ends it with terminal_offline, ignoring an offline of an older epoch", async () => {
    const h = await ready();
    await h.status("term-1", "online", 2000);
    const mark = h.states.length;
    const eventMark = h.events.length;
    await h.send(h.relay());
    const available = await h.state(mark, (s) => s.state === "available", "the relay session");
    expect(available).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: "term-1",
      since: available.since,
      reason: "frame_accepted",
      mode: "relay",
    });
    // The target follows term-1's status once the session is open: the retained online arrives.
    await waitFor(() => h.target.stats().status_accepted === 1, "the terminal's retained status");
    await h.status("term-1", "offline", 1000);
    await waitFor(() => h.target.stats().status_ignored === 1, "the old epoch's offline to be ignored");
    expect(h.target.openSessions().map((s) => s.term)).toEqual(["term-1"]);
    await h.status("term-1", "offline", 2000);
    const ended = await h.state(mark, (s) => s.state === "unavailable", "terminal_offline");
    expect(ended).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: ended.since,
      reason: "terminal_offline",
    });
    expect(h.events.slice(eventMark).filter((e) => e.type === "session_ended")).toEqual([
      {
        v: 1,
        tid: TID,
        ts: expect.any(Number),
        type: "session_ended",
        reason: "terminal_offline",
        slot: "slot-1",
        term: "term-1",
      },
    ]);
  });

  it("ends relay sessions when the key server goes offline, while a stored session survives", async () => {
    const h = await ready();
    await h.status("keyserver", "online", 7);
    const mark = h.states.length;
    const eventMark = h.events.length;
    await h.send(h.frame());
    await h.send(h.relay({ term: "term-r" }), "term-r");
    await waitFor(() => h.target.openSessions().length === 2, "a stored and a relay session");
    await h.status("keyserver", "offline", 7);
    const ended = await h.event(eventMark, (e) => e.type === "session_ended", "the relay session to end");
    expect(ended).toEqual({
      v: 1,
      tid: TID,
      ts: ended.ts,
      type: "session_ended",
      reason: "keyserver_offline",
      slot: "slot-1",
      term: "term-r",
    });
    expect(h.target.openSessions().map((s) => [s.term, s.mode])).toEqual([["term-1", "stored"]]);
    // The stored key keeps the target open; a relay frame is refused while the key server is away.
    await h.send(h.frame());
    await h.send(h.relay({ term: "term-r" }), "term-r");
    const refused = await h.event(eventMark, (e) => e.type === "auth_refused", "the relay refusal");
    expect(refused).toEqual({
      v: 1,
      tid: TID,
      ts: refused.ts,
      type: "auth_refused",
      reason: "keyserver_offline",
      slot: "slot-1",
      term: "term-r",
    });
    expect(h.states.slice(mark).map((s) => s.state)).not.toContain("unavailable");
  });

  it("refuses relay frames for another target, another slot, or an old nonce", async () => {
    const h = await ready();
    const eventMark = h.events.length;
    const oldNonce = h.nonce();
    await h.send(h.relay({ tid: "lock-2" }));
    await h.send(h.relay({ slot: "slot-9" }));
    await waitFor(() => h.nonce() !== oldNonce, "a rotation");
    const moved = h.nonce();
    await waitFor(() => h.nonce() !== moved, "a second rotation");
    await h.send(h.relay({ nonce: oldNonce }));
    await waitFor(() => h.events.length >= eventMark + 3, "three refusals");
    expect(h.events.slice(eventMark).map((e) => [e.type, e.reason])).toEqual([
      ["auth_refused", "wrong_target"],
      ["auth_refused", "unknown_slot"],
      ["auth_refused", "stale_nonce"],
    ]);
  });

  it("counts a use before it opens: a restarted target refuses a 1-use key with uses_exhausted", async () => {
    const h = await ready();
    const mark = h.events.length;
    await h.send(h.frame({ slot: "slot-2", cred: h.credential({ slot: "slot-2" }) }));
    const opened = await h.event(mark, (e) => e.type === "auth_established", "the only use");
    expect(opened).toMatchObject({ slot: "slot-2", uses_left: 0 });
    await h.stopTarget();
    await h.startTarget();
    await waitFor(() => h.target.stats().registry_version === 1, "the persisted registry");
    const again = h.events.length;
    await waitFor(() => h.target.currentChallenge().nonce === h.nonce(), "the new challenge");
    await h.send(h.frame({ slot: "slot-2", cred: h.credential({ slot: "slot-2" }) }));
    expect(await h.event(again, (e) => e.type.startsWith("auth_"), "the second try")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "uses_exhausted",
      slot: "slot-2",
      term: "term-1",
    });
  });
});

describe("target commands over MQTT", () => {
  it("applies an unlock once and refuses the replayed cmd_id", async () => {
    const h = await ready();
    const mark = h.states.length;
    const eventMark = h.events.length;
    const cmd = "cmd-integration-0001";
    await h.unlock({ cmd_id: cmd, duration_ms: 500 });
    const open = await h.state(mark, (s) => s.state === "available", "the unlock");
    expect(open).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      term: "term-1",
      since: open.since,
      reason: "unlocked",
      mode: "unlock",
    });
    await h.unlock({ cmd_id: cmd, duration_ms: 500 });
    const refused = await h.event(eventMark, (e) => e.type === "unlock_refused", "the replay");
    expect(refused).toEqual({
      v: 1,
      tid: TID,
      ts: refused.ts,
      type: "unlock_refused",
      reason: "unlock_replayed",
      term: "term-1",
      cmd_id: cmd,
    });
    const closed = await h.state(mark, (s) => s.state === "unavailable", "unlock_elapsed");
    expect(closed.reason).toBe("unlock_elapsed");
  });

  it("acknowledges the fleet list on apply and again from the retained copy after a restart", async () => {
    const h = await ready();
    const eventMark = h.events.length;
    await h.ks.publishAsync(h.topics.revocations(), mintRevocations(h.issuer, { version: 4 }), {
      qos: 1,
      retain: true,
    });
    await h.event(eventMark, (e) => e.type === "revocations_applied", "the first acknowledgement");
    await h.stopTarget();
    await h.startTarget();
    await waitFor(
      () => h.events.slice(eventMark).filter((e) => e.type === "revocations_applied").length === 2,
      "the second acknowledgement",
    );
    expect(h.events.slice(eventMark).filter((e) => e.type.startsWith("revocations_"))).toEqual([
      { v: 1, tid: TID, ts: expect.any(Number), type: "revocations_applied", version: 4 },
      { v: 1, tid: TID, ts: expect.any(Number), type: "revocations_applied", version: 4 },
    ]);
  });
});
