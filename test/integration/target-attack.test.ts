import { describe, expect, it } from "vitest";
import type { TargetEvent } from "../../schemas/messages.js";
import { registryEntry } from "../helpers/issuer.js";
import { waitFor } from "../helpers/wait.js";
import { type TargetHarness, TID, targetHarness } from "./target-harness.js";

/** A target under bad frames, over a real broker with its default limits. */

async function ready(): Promise<TargetHarness> {
  const h = await targetHarness();
  await h.publishRegistry(1, [registryEntry("slot-1")]);
  const mark = h.events.length;
  await h.startTarget();
  await h.event(mark, (e) => e.type === "registry_applied", "registry_applied");
  await waitFor(() => h.states.length > 0 && h.nonce().length === 22, "a challenge");
  return h;
}

function refusalsOf(events: readonly TargetEvent[], term: string): TargetEvent[] {
  return events.filter((e) => e.type === "auth_refused" && e.term === term);
}

function countOf(events: readonly TargetEvent[]): number {
  return events.reduce((sum, e) => sum + (e.count ?? 1), 0);
}

describe("target under attack", () => {
  // Regression (Frames on a topic that names the sender): a frame was judged by the term its payload
  // claimed, so a sender could act (and be counted) as another terminal.
  it("refuses a frame naming another terminal than its topic with term_mismatch, reported as its sender", async () => {
    const h = await ready();
    const mark = h.events.length;
    await h.send(h.frame({ term: "term-2", cred: h.credential({ term: "term-2" }) }), "term-1");
    expect(await h.event(mark, (e) => e.type === "auth_refused", "the refusal")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "term_mismatch",
      slot: "slot-1",
      term: "term-1",
    });
    // The same frame from the terminal it names, on its own topic, opens the target.
    const opened = h.events.length;
    await h.send(h.frame({ term: "term-2", cred: h.credential({ term: "term-2" }) }), "term-2");
    expect(await h.event(opened, (e) => e.type.startsWith("auth_"), "the decision")).toMatchObject({
      type: "auth_established",
      term: "term-2",
    });
  });

  // Regression (Refusal events coalesced): two terminals sending bad frames at 45/s got a lock
  // disconnected, one auth_refused event per frame taking it over its own publish budget.
  it("stays connected while two terminals send bad frames as fast as the broker lets them", async () => {
    const h = await ready();
    const disconnects: string[] = [];
    h.broker.aedes.on("clientDisconnect", (client) => disconnects.push(client.id));
    const mark = h.events.length;
    const states = h.states.length;
    const perTerminal = 250;
    // Rounds small enough that the broker only delays each terminal (never drops it): each round is
    // sent once the target has counted the previous one.
    const round = 25;
    for (let sent = 0; sent < perTerminal; sent += round) {
      const batch = Array.from({ length: round }, () => "junk");
      await Promise.all(["term-1", "term-2"].flatMap((term) => batch.map((frame) => h.send(frame, term))));
      const expected = 2 * (sent + round);
      await waitFor(() => h.target.stats().refused_total === expected, `${expected} frames refused`);
    }
    for (const term of ["term-1", "term-2"]) {
      await waitFor(
        () => countOf(refusalsOf(h.events.slice(mark), term)) === perTerminal,
        `${term}'s refusal counts to add up to ${perTerminal}`,
      );
      const events = refusalsOf(h.events.slice(mark), term);
      const span = (events.at(-1)?.ts ?? 0) - (events[0]?.ts ?? 0);
      expect(events.length).toBeLessThanOrEqual(span / h.config.period_ms + 1);
    }
    expect({
      disconnects,
      offline: h.states.slice(states).filter((s) => s.state === "offline"),
      lockouts: h.events
        .slice(mark)
        .filter((e) => e.type === "lockout")
        .map((e) => e.term),
    }).toEqual({ disconnects: [], offline: [], lockouts: ["term-1", "term-2"] });
  });
});
