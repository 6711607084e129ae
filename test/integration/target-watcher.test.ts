import { describe, expect, it } from "vitest";
import { type Observed, TargetWatcher } from "../../common/target-watcher.js";
import type { TargetState } from "../../schemas/messages.js";
import { Topics } from "../../schemas/topics.js";
import { connectAs, startTestBroker, tableAuthenticator } from "../helpers/broker.js";

const TID = "lock-1";
const topics = new Topics();

async function setup() {
  const broker = await startTestBroker(
    tableAuthenticator({
      [TID]: { role: "target", password: "target-pw" },
      ks: { role: "keyserver", password: "ks-pw" },
    }),
  );
  const lock = await connectAs(broker, TID, "target-pw");
  const ks = await connectAs(broker, "ks", "ks-pw");
  const watcher = new TargetWatcher({ client: ks, tid: TID });
  await watcher.start();
  const publishState = (payload: unknown) =>
    lock.publishAsync(topics.state(TID), JSON.stringify(payload), { qos: 1, retain: true });
  const publishEvent = (payload: unknown) =>
    lock.publishAsync(topics.events(TID), JSON.stringify(payload), { qos: 1 });
  return { lock, ks, watcher, publishState, publishEvent };
}

const state = (s: TargetState["state"], reason: TargetState["reason"], since: number): TargetState => ({
  v: 1,
  tid: TID,
  state: s,
  since,
  reason,
});

describe("the target watcher", () => {
  it("delivers valid states and events in order to waits and to async iteration", async () => {
    const { watcher, publishState, publishEvent } = await setup();
    const seen: Observed[] = [];
    const iterating = (async () => {
      for await (const o of watcher) {
        seen.push(o);
        if (seen.length === 3) break;
      }
    })();
    const at = watcher.mark();
    await publishState(state("unavailable", "started", 1_000));
    await publishEvent({ v: 1, tid: TID, ts: 1_001, type: "registry_applied", version: 2 });
    await publishState(state("available", "frame_accepted", 1_002));
    await expect(
      watcher.state((s) => s.state === "available", { from: at, what: "the open state" }),
    ).resolves.toEqual(state("available", "frame_accepted", 1_002));
    await iterating;
    expect(seen).toEqual([
      { kind: "state", msg: state("unavailable", "started", 1_000) },
      { kind: "event", msg: { v: 1, tid: TID, ts: 1_001, type: "registry_applied", version: 2 } },
      { kind: "state", msg: state("available", "frame_accepted", 1_002) },
    ]);
    expect(watcher.invalid).toEqual([]);
  });

  it("catches a target publishing an invalid state: the pending wait fails naming the topic", async () => {
    const { watcher, publishState } = await setup();
    const waiting = watcher.state((s) => s.state === "available", { what: "the open state" });
    await publishState({ v: 1, tid: TID, state: "open", since: 5, reason: "started" });
    await expect(waiting).rejects.toMatchObject({
      code: "schema_violation",
      message: expect.stringContaining(`invalid payload on ${topics.state(TID)}: /state`),
    });
    expect(watcher.invalid).toEqual([
      {
        topic: topics.state(TID),
        payload: JSON.stringify({ v: 1, tid: TID, state: "open", since: 5, reason: "started" }),
        issues: expect.arrayContaining([expect.stringMatching(/^\/state /)]),
      },
    ]);
    // A later valid state does not hide the error: the watcher keeps failing its waits.
    await publishState(state("available", "frame_accepted", 6));
    await expect(watcher.state(() => true, { what: "any state" })).rejects.toMatchObject({
      code: "schema_violation",
    });
  });

  it("reports a state that is not JSON to onInvalid and fails the wait", async () => {
    const { lock, ks } = await setup();
    const bad: string[] = [];
    const watcher = new TargetWatcher({ client: ks, tid: TID, onInvalid: (b) => bad.push(...b.issues) });
    await watcher.start();
    const waiting = watcher.waitFor(() => true, { what: "anything" });
    await lock.publishAsync(topics.state(TID), "{ nope", { qos: 1 });
    await expect(waiting).rejects.toMatchObject({ code: "schema_violation" });
    expect(bad).toEqual(["not JSON"]);
  });

  it("fails a wait that times out with timeout, naming what it waited for", async () => {
    const { watcher } = await setup();
    await expect(
      watcher.event((e) => e.type === "unlock_applied", { what: "the unlock", timeoutMs: 50 }),
    ).rejects.toMatchObject({ code: "timeout", message: `waited 50 ms for the unlock of ${TID}` });
  });
});
