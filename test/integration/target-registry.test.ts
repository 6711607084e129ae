import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TargetStateFile } from "../../schemas/records.js";
import { validator } from "../../schemas/validate.js";
import { stateFilePath } from "../../target/store.js";
import { mintRegistry, registryEntry } from "../helpers/issuer.js";
import { waitFor } from "../helpers/wait.js";
import { type TargetHarness, TID, targetHarness } from "./target-harness.js";

function persisted(h: TargetHarness): TargetStateFile {
  const text = readFileSync(stateFilePath(h.config.state_dir, TID), "utf8");
  return validator(TargetStateFile).parse(JSON.parse(text));
}

async function ready(): Promise<TargetHarness> {
  const h = await targetHarness({ periodMs: 200 });
  await h.publishRegistry(1);
  const mark = h.events.length;
  await h.startTarget();
  await h.event(mark, (e) => e.type === "registry_applied" && e.version === 1, "registry v1 applied");
  await waitFor(() => h.nonce().length === 22, "a challenge");
  return h;
}

describe("target registry and persistence", () => {
  it("applies and persists a newer registry and ignores an older one", async () => {
    const h = await ready();
    let mark = h.events.length;
    await h.publishRegistry(3, [registryEntry("slot-1"), registryEntry("slot-7", { min_gen: 4 })]);
    expect(await h.event(mark, (e) => e.type === "registry_applied", "registry v3 applied")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "registry_applied",
      version: 3,
    });
    expect(persisted(h)).toMatchObject({
      registry_version: 3,
      registry: [registryEntry("slot-1"), registryEntry("slot-7", { min_gen: 4 })],
    });

    // An older version, then a newer one on the same topic: only the newer leaves a trace.
    mark = h.events.length;
    await h.publishRegistry(2, [registryEntry("slot-2")]);
    await h.publishRegistry(4, [registryEntry("slot-1"), registryEntry("slot-8")]);
    await h.event(mark, (e) => e.type === "registry_applied" && e.version === 4, "registry v4 applied");
    expect(h.events.slice(mark).filter((e) => e.type.startsWith("registry_"))).toEqual([
      { v: 1, tid: TID, ts: expect.any(Number), type: "registry_applied", version: 4 },
    ]);
    expect(persisted(h)).toMatchObject({
      registry_version: 4,
      registry: [registryEntry("slot-1"), registryEntry("slot-8")],
    });
  });

  it("refuses a registry signed for another target", async () => {
    const h = await ready();
    const mark = h.events.length;
    await h.ks.publishAsync(h.topics.registry(TID), mintRegistry(h.issuer, "lock-2", { version: 9 }), {
      qos: 1,
      retain: true,
    });
    expect(await h.event(mark, (e) => e.type === "registry_refused", "registry_refused")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "registry_refused",
      reason: "wrong_target",
    });
    expect(persisted(h).registry_version).toBe(1);
  });

  it("ends the open session with slot_revoked when the registry revokes its slot", async () => {
    const h = await ready();
    const stateMark = h.states.length;
    await h.send(h.frame());
    await h.state(stateMark, (s) => s.state === "available", "available state");
    // Keep the session alive while the registry travels.
    const keepAlive = setInterval(() => void h.send(h.frame()).catch(() => undefined), 50);
    try {
      const mark = h.events.length;
      await h.publishRegistry(2, [registryEntry("slot-1", { status: "revoked" })]);
      expect(await h.event(mark, (e) => e.type === "session_ended", "session_ended")).toEqual({
        v: 1,
        tid: TID,
        ts: expect.any(Number),
        type: "session_ended",
        reason: "slot_revoked",
        slot: "slot-1",
        term: "term-1",
      });
      const unavailable = await h.state(stateMark, (s) => s.state === "unavailable", "unavailable state");
      expect(unavailable).toEqual({
        v: 1,
        tid: TID,
        state: "unavailable",
        since: unavailable.since,
        reason: "slot_revoked",
      });
      await h.event(
        mark,
        (e) => e.type === "auth_refused" && e.reason === "slot_revoked",
        "later frames refused as slot_revoked",
      );
    } finally {
      clearInterval(keepAlive);
    }
  });

  it("keeps floors, registry version and seq high-water marks across a restart", async () => {
    const h = await ready();
    // A gen 2 key raises the slot's floor to 2; seq 10 is the terminal's high-water mark.
    const gen2 = h.credential({ gen: 2 });
    let mark = h.events.length;
    await h.send(h.frame({ cred: gen2, seq: 10 }));
    await h.event(mark, (e) => e.type === "auth_established", "auth_established gen 2");
    await h.stopTarget();
    expect(persisted(h)).toEqual({
      v: 1,
      tid: TID,
      registry_version: 1,
      registry: [registryEntry("slot-1")],
      revocations_version: 0,
      revoked: [],
      floors: { "slot-1": 2 },
      seqs: { "term-1": 10 },
      uses: { "slot-1:2": 1 },
      time_floor_ms: expect.any(Number),
    });

    mark = h.events.length;
    const nonceBefore = h.nonce();
    await h.startTarget();
    await waitFor(() => h.nonce() !== nonceBefore, "the restarted target's challenge");
    await h.send(h.frame({ cred: h.credential({ gen: 1 }), seq: 11 }));
    expect(await h.event(mark, (e) => e.type === "auth_refused", "old generation refused")).toMatchObject({
      reason: "old_generation",
      slot: "slot-1",
      term: "term-1",
    });
    mark = h.events.length;
    await h.send(h.frame({ cred: gen2, seq: 10 }));
    expect(await h.event(mark, (e) => e.type === "auth_refused", "old seq refused")).toMatchObject({
      reason: "replayed_seq",
    });
    // The equal registry version coming back retained is not applied again.
    expect(h.events.slice(mark).some((e) => e.type === "registry_applied")).toBe(false);
    expect(h.target.stats()).toMatchObject({ registry_version: 1, accepted: 0 });
  });
});
