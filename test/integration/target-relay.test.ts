import { describe, expect, it, onTestFinished } from "vitest";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
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
    await h.relayReady("term-1", 2000);
    const mark = h.states.length;
    const eventMark = h.events.length;
    await h.send(h.relay({ epoch: 2000 }));
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
    await h.relayReady("term-r", 1);
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

/** term-2 on its own connection, with the retained `offline` will of `epoch` a terminal sets. */
async function terminal2(h: TargetHarness, epoch: number, will = true): Promise<MqttClient> {
  const offline = h.topics.message("terminalStatus", { term: "term-2" }, { v: 1, state: "offline", epoch });
  const client = await connectMqtt({
    url: h.broker.url,
    clientId: "term-2",
    username: "term-2",
    password: "term-password",
    reconnectPeriod: 0,
    ...(will ? { will: offline } : {}),
  });
  onTestFinished(() => client.endAsync(true));
  return client;
}

describe("relay hold-back", () => {
  it("refuses a relay frame captured while the line was up and played after the cut, after the session ended and after a reconnect with a new epoch", async () => {
    const h = await targetHarness({ periodMs: 60_000 });
    await h.publishRegistry(1);
    await h.startTarget();
    const E1 = 1_700_000_000_000;
    const phone = await terminal2(h, E1);
    await phone.publishAsync(
      h.topics.terminalStatus("term-2"),
      JSON.stringify({ v: 1, state: "online", epoch: E1 }),
      {
        qos: 1,
        retain: true,
      },
    );
    const send = (client: MqttClient, frame: string) =>
      client.publishAsync(h.topics.frames(TID, "term-2"), frame, { qos: 0 });
    // Read from the target's counters, not its events: refusals of one terminal within a period (60 s
    // here, so the nonce holds still) are summed into one event at the period's end.
    const decision = async (client: MqttClient, frame: string) => {
      const before = h.target.stats();
      const refusedBefore = new Map(Object.entries(before.refused));
      await send(client, frame);
      await waitFor(() => {
        const now = h.target.stats();
        return now.accepted > before.accepted || now.refused_total > before.refused_total;
      }, "a decision");
      const after = h.target.stats();
      if (after.accepted > before.accepted) return "accepted";
      return Object.entries(after.refused).find(
        ([reason, n]) => (n ?? 0) > (refusedBefore.get(reason) ?? 0),
      )?.[0];
    };
    // The first relay frame teaches the target to follow term-2; the next one opens.
    expect(await decision(phone, h.relay({ term: "term-2", epoch: E1 }))).toBe("terminal_status_unknown");
    await waitFor(() => h.target.stats().status_accepted === 2, "term-2's retained status");
    expect(await decision(phone, h.relay({ term: "term-2", epoch: E1 }))).toBe("accepted");

    // A frame the key server signed while the line was up, held back.
    const captured = h.relay({ term: "term-2", epoch: E1 });
    const from = h.events.length;
    phone.stream.destroy(); // the line is cut: the broker publishes the will (offline, E1)
    await h.event(
      from,
      (e) => e.type === "session_ended" && e.reason === "terminal_offline",
      "the session's end",
    );

    // An accomplice replays it after the session ended: the target still holds the offline.
    const accomplice = await terminal2(h, E1, false);
    expect(await decision(accomplice, captured)).toBe("terminal_offline");

    // The phone comes back on a new connection (a new epoch): the held-back frame is of the old one.
    const E2 = E1 + 1;
    await accomplice.publishAsync(
      h.topics.terminalStatus("term-2"),
      JSON.stringify({ v: 1, state: "online", epoch: E2 }),
      {
        qos: 1,
        retain: true,
      },
    );
    await waitFor(() => h.target.stats().status_accepted === 4, "the new epoch's online status");
    expect(await decision(accomplice, captured)).toBe("stale_epoch");
    // What the key server signs for the new line is good.
    expect(await decision(accomplice, h.relay({ term: "term-2", epoch: E2 }))).toBe("accepted");
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
