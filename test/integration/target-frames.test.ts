import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeHolder, makeIssuer, mintCredential, rawToken, registryEntry } from "../helpers/issuer.js";
import { tempDir, waitFor } from "../helpers/wait.js";
import { type TargetHarness, TID, targetHarness } from "./target-harness.js";

async function ready(options: Parameters<typeof targetHarness>[0] = {}): Promise<TargetHarness> {
  const h = await targetHarness(options);
  await h.publishRegistry(1, [
    registryEntry("slot-1"),
    registryEntry("slot-2", { status: "revoked" }),
    registryEntry("slot-3", { min_gen: 2 }),
  ]);
  const mark = h.events.length;
  await h.startTarget();
  await h.event(mark, (e) => e.type === "registry_applied", "registry_applied");
  await waitFor(() => h.states.length > 0 && h.nonce().length === 22, "a challenge");
  return h;
}

describe("target over MQTT", () => {
  it("becomes available on a good frame and unavailable with frame_timeout when frames stop", async () => {
    const h = await ready();
    const mark = h.states.length;
    const eventMark = h.events.length;
    await h.send(h.frame());
    const available = await h.state(mark, (s) => s.state === "available", "available state");
    expect(available).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: "term-1",
      since: available.since,
      reason: "frame_accepted",
      mode: "stored",
    });
    const established = await h.event(eventMark, (e) => e.type === "auth_established", "auth_established");
    expect(established).toEqual({
      v: 1,
      tid: TID,
      ts: established.ts,
      type: "auth_established",
      slot: "slot-1",
      term: "term-1",
      gen: 1,
    });
    const nonceWhenOpen = h.nonce();
    const ended = await h.state(mark, (s) => s.state === "unavailable", "unavailable state");
    // Ended by the frame timeout (two periods), not at once: the challenge rotated in between.
    expect(h.nonce()).not.toBe(nonceWhenOpen);
    expect(ended).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: ended.since,
      reason: "frame_timeout",
    });
    expect(await h.event(eventMark, (e) => e.type === "session_ended", "session_ended")).toMatchObject({
      reason: "frame_timeout",
      slot: "slot-1",
      term: "term-1",
    });
  });

  it("refuses every kind of bad frame with its reason and still accepts the next good frame", async () => {
    // Twelve wrong-key refusals in a row would lock term-1 out (10 in 60 s): this test is about each reason.
    const h = await ready({ periodMs: 400, lockout: { lockout_refusals: 100 } });
    const otherIssuer = makeIssuer();
    const otherHolder = makeHolder();
    const cases: [string, () => string][] = [
      ["malformed", () => rawToken({ alg: "EdDSA", typ: "sparekey-frame+jws" }, Buffer.from("{not json"))],
      [
        "schema_violation",
        () =>
          rawToken(
            { alg: "EdDSA", typ: "sparekey-frame+jws", kid: h.holder.key.kid },
            {
              v: 1,
              tid: TID,
              slot: "slot-1",
              term: "term-1",
              nonce: h.nonce(),
              seq: h.nextSeq(),
              extra: true,
            },
            h.holder.key,
          ),
      ],
      ["wrong_target", () => h.frame({ tid: "lock-2" })],
      ["stale_nonce", () => h.frame({ nonce: "C".repeat(22) })],
      ["unknown_slot", () => h.frame({ slot: "slot-9", cred: h.credential({ slot: "slot-9" }) })],
      ["slot_revoked", () => h.frame({ slot: "slot-2", cred: h.credential({ slot: "slot-2" }) })],
      ["old_generation", () => h.frame({ slot: "slot-3", cred: h.credential({ slot: "slot-3" }) })],
      [
        "unknown_issuer",
        () => h.frame({ cred: mintCredential(otherIssuer, { holder: h.holder.publicKeyB64, tids: [TID] }) }),
      ],
      [
        "bad_credential_signature",
        () =>
          h.frame({
            cred: mintCredential(
              { ...otherIssuer, key: { ...otherIssuer.key, kid: h.issuer.key.kid } },
              { holder: h.holder.publicKeyB64, tids: [TID] },
            ),
          }),
      ],
      ["bad_frame_signature", () => h.frame({}, otherHolder)],
      [
        "wrong_typ",
        () =>
          rawToken(
            { alg: "EdDSA", typ: "sparekey-credential+jws", kid: h.holder.key.kid },
            JSON.parse(Buffer.from(h.frame().split(".")[1] ?? "", "base64url").toString()),
            h.holder.key,
          ),
      ],
      ["bad_alg", () => rawToken({ alg: "none", typ: "sparekey-frame+jws" }, { v: 1, tid: TID })],
    ];
    for (const [reason, make] of cases) {
      const mark = h.events.length;
      await h.send(make());
      const refused = await h.event(mark, (e) => e.type === "auth_refused", `auth_refused ${reason}`);
      expect({ ...refused, ts: 0 }).toMatchObject({ v: 1, tid: TID, ts: 0, type: "auth_refused", reason });
      const accepted = h.target.stats().accepted;
      await h.send(h.frame());
      await waitFor(
        () => h.target.stats().accepted === accepted + 1,
        `a good frame accepted after ${reason}`,
      );
    }

    // A repeated seq: the same frame twice.
    const repeated = h.frame();
    const accepted = h.target.stats().accepted;
    await h.send(repeated);
    await waitFor(() => h.target.stats().accepted === accepted + 1, "the first copy accepted");
    const mark = h.events.length;
    await h.send(repeated);
    expect(await h.event(mark, (e) => e.type === "auth_refused", "auth_refused replayed_seq")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "replayed_seq",
      slot: "slot-1",
      term: "term-1",
    });
    await h.send(h.frame());
    await waitFor(() => h.target.stats().accepted === accepted + 2, "a good frame after the replay");
    expect(h.target.currentState()).toMatchObject({ state: "available", slot: "slot-1", term: "term-1" });
    expect(h.target.stats().refused).toEqual({
      malformed: 1,
      schema_violation: 1,
      wrong_target: 1,
      stale_nonce: 1,
      unknown_slot: 1,
      slot_revoked: 1,
      old_generation: 1,
      unknown_issuer: 1,
      bad_credential_signature: 1,
      bad_frame_signature: 1,
      wrong_typ: 1,
      bad_alg: 1,
      replayed_seq: 1,
    });
  });

  it("refuses a retained frame however well signed", async () => {
    const h = await ready();
    await h.retainFrame(h.frame());
    await h.stopTarget();
    const mark = h.events.length;
    await h.startTarget();
    expect(await h.event(mark, (e) => e.type === "auth_refused", "auth_refused")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "retained_frame",
      // The topic's {term}: the one level the broker vouches for, even on a retained frame.
      term: "term-1",
    });
  });

  it("runs the actuator with each new state in its environment", async () => {
    const out = join(tempDir(), "actuator.log");
    const script =
      "require('node:fs').appendFileSync(process.argv[1], [process.env.SPAREKEY_TID, process.env.SPAREKEY_STATE, process.env.SPAREKEY_REASON, process.env.SPAREKEY_SLOT, process.env.SPAREKEY_TERM].join(' ') + '\\n')";
    const h = await ready({ actuator: [process.execPath, "-e", script, out] });
    await h.send(h.frame());
    const expected = [
      "lock-1 unavailable started  ",
      "lock-1 available frame_accepted slot-1 term-1",
      "lock-1 unavailable frame_timeout  ",
      "",
    ].join("\n");
    const read = () => {
      try {
        return readFileSync(out, "utf8");
      } catch {
        return "";
      }
    };
    await waitFor(() => read() === expected, "the actuator's log of three states");
    expect(read()).toBe(expected);
  });
});
