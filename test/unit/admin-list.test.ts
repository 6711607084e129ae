import { dirname, join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { generateSigningKey } from "../../common/keys.js";
import { decideDownload } from "../../keyserver/grants.js";
import { openKeyServerState } from "../../keyserver/state.js";
import type { TargetEvent } from "../../schemas/messages.js";
import { tempDataDir } from "../helpers/keyserver.js";

/**
 * A data dir where alice's phone p1 holds a 3-use key on s1 (door-1) that door-1 reported using, and
 * fob-1 holds s2.
 */
async function seeded() {
  const data = await tempDataDir();
  const dir = dirname(data);
  const run = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runAdmin(["--data", data, ...argv], {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
      env: { SPAREKEY_PASSWORD: "first-password" },
    });
    expect({ code, err }, argv.join(" ")).toEqual({ code: 0, err: "" });
    return out;
  };
  await run("user", "add", "--user", "alice");
  await run("terminal", "add", "--serial", "p1", "--user", "alice");
  await run("target", "pair", "--tid", "door-1", "--out", join(dir, "door-1.json"));
  await run("slot", "create", "--slot", "s1", "--target", "door-1");
  await run("slot", "create", "--slot", "s2", "--target", "door-1");
  await run("grant", "--slot", "s1", "--user", "alice", "--max-uses", "3");
  await run("write-fob", "--slot", "s2", "--fob", "fob-1", "--out", join(dir, "fob-1.json"));

  const state = openKeyServerState(data);
  onTestFinished(() => state.close());
  const now = Math.floor(Date.now() / 1000);
  const facts = { publicKey: generateSigningKey().key.publicKeyB64, tid: "door-1", now };
  await state.store.issueStored({ ...facts, term: "p1", jti: "jti-p1-000000000001" }, (read) =>
    decideDownload(read, facts),
  );
  const established = (gen: number, usesLeft: number, slot = "s1"): TargetEvent => ({
    v: 1,
    tid: "door-1",
    ts: Date.now(),
    type: "auth_established",
    slot,
    term: "p1",
    gen,
    uses_left: usesLeft,
  });
  await state.store.appendAccessLog([
    { received: Date.now(), event: established(1, 2) },
    { received: Date.now(), event: established(1, 1) },
    // An older key's count says nothing about the current one.
    { received: Date.now(), event: established(7, 0) },
    { received: Date.now(), event: established(1, 0, "s2") },
  ]);
  return { run };
}

describe("sparekey admin list", () => {
  it("lists each slot's holders by user id (a fob has none) and the uses left the targets reported", async () => {
    const { run } = await seeded();
    const slots = await run("list", "slots", "--tz", "Europe/Berlin");
    expect(slots).toMatch(/^s1\s+\["door-1"\]\s+1\s+1\s+active\s+alice \(p1, gen 1\)\s+\d{4}-/m);
    expect(slots).toMatch(/^s2\s+\["door-1"\]\s+1\s+1\s+active\s+fob \(fob-1, gen 1\)\s+\d{4}-/m);
    const grants = await run("list", "grants", "--tz", "Europe/Berlin");
    expect(grants).toMatch(/^alice\s+s1\s+stored\s+active\s+3 uses per key\s+1 at door-1\s+\d{4}-/m);
  });

  it("shows instants in the operator's zone with the offset, never raw Unix seconds", async () => {
    const { run } = await seeded();
    for (const kind of ["users", "terminals", "targets", "slots", "grants"]) {
      const table = await run("list", kind, "--tz", "Asia/Kolkata");
      expect(table, kind).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+05:30/);
      expect(table, kind).not.toMatch(/\b1\d{9}\b/);
    }
  });

  it("keeps stored values in --json: holders with Unix seconds, uses left by target", async () => {
    const { run } = await seeded();
    const slots = JSON.parse(await run("list", "slots", "--json"));
    expect(slots.map((s: { slot: string; holders: unknown }) => [s.slot, s.holders])).toEqual([
      ["s1", [{ term: "p1", user: "alice", gen: 1, issued: expect.any(Number) }]],
      ["s2", [{ term: "fob-1", gen: 1, issued: expect.any(Number) }]],
    ]);
    const grants = JSON.parse(await run("list", "grants", "--json"));
    expect(grants).toEqual([
      expect.objectContaining({ user_id: "alice", slot: "s1", uses_left: { "door-1": 1 } }),
    ]);
  });
});

describe("sparekey admin audit", () => {
  it("shows times in the operator's zone with the offset; --json keeps Unix ms", async () => {
    const { run } = await seeded();
    const table = await run("audit", "--tz", "Asia/Kolkata");
    expect(table).toMatch(/^\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+05:30\s+admin\s+user\.add/m);
    expect(table).not.toMatch(/\b1\d{12}\b/);
    const rows = JSON.parse(await run("audit", "--json")) as { ts: unknown }[];
    expect(rows.every((r) => typeof r.ts === "number" && r.ts > 1_600_000_000_000)).toBe(true);
  });
});
