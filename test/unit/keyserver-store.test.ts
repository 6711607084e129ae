import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { hashSecret } from "../../keyserver/passwords.js";
import { SqliteStore } from "../../keyserver/store/sqlite.js";
import { tempDir } from "../helpers/wait.js";

const NOW_MS = 1_700_000_000_000;
const NOW_S = NOW_MS / 1000;
const PUB_A = "A".repeat(43);
const PUB_B = "B".repeat(43);
const TARGET_SECRET = "t".repeat(43);

function openStore(path = join(tempDir(), "sparekey.db")): SqliteStore {
  const store = SqliteStore.open(path, { now: () => NOW_MS });
  onTestFinished(() => store.close());
  return store;
}

/** alice with phone p1, targets door-1 and door-2 in slot s1, alice granted stored on s1. */
async function seeded(store: SqliteStore): Promise<SqliteStore> {
  await store.addUser({ id: "alice", passwordHash: "scrypt$hash-not-checked-here" }, "admin");
  await store.addTerminal({ serial: "p1", user: "alice" }, "admin");
  await store.addTarget({ tid: "door-1", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.addTarget({ tid: "door-2", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-2", "door-1"] }, "admin");
  await store.addGrant({ user: "alice", slot: "s1", mode: "stored" }, "admin");
  return store;
}

describe("SqliteStore", () => {
  it("creates users, terminals, targets, slots and grants and lists them", async () => {
    const store = await seeded(openStore());
    expect(await store.listUsers()).toEqual([{ id: "alice", created: NOW_S }]);
    expect(await store.listTerminals()).toEqual([
      { serial: "p1", kind: "phone", user: "alice", created: NOW_S, disabled: false },
    ]);
    expect(await store.listTargets()).toEqual([
      { tid: "door-1", created: NOW_S, registry_version: 2, published_version: 0 },
      { tid: "door-2", created: NOW_S, registry_version: 2, published_version: 0 },
    ]);
    expect(await store.listSlots()).toEqual([
      { slot: "s1", gen: 0, min_gen: 1, status: "active", created: NOW_S, tids: ["door-1", "door-2"] },
    ]);
    expect(await store.listGrants()).toEqual([
      {
        user_id: "alice",
        slot: "s1",
        mode: "stored",
        status: "active",
        nbf: null,
        exp: null,
        max_uses: null,
        created: NOW_S,
        schedule: null,
        first_use_ttl_s: null,
        unlock_password: false,
      },
    ]);
  });

  it("keeps terminal serials and target ids in one namespace and reserves keyserver ids", async () => {
    const store = await seeded(openStore());
    await expect(store.addTarget({ tid: "p1", secretHash: "x" }, "admin")).rejects.toMatchObject({
      code: "already_exists",
    });
    await expect(store.addTerminal({ serial: "door-1", user: "alice" }, "admin")).rejects.toMatchObject({
      code: "already_exists",
    });
    await expect(store.addTerminal({ serial: "keyserver-2", user: "alice" }, "admin")).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(store.addTarget({ tid: "a/b", secretHash: "x" }, "admin")).rejects.toMatchObject({
      code: "invalid_id",
    });
    expect((await store.listTargets()).map((t) => t.tid)).toEqual(["door-1", "door-2"]);
  });

  it("download issues the next generation, raises the floor and bumps every target's registry", async () => {
    const store = await seeded(openStore());
    const first = await store.issueStored({
      term: "p1",
      publicKey: PUB_A,
      tid: "door-1",
      now: NOW_S,
      jti: "jti-0000000000001",
    });
    expect(first).toEqual({ slot: "s1", gen: 1, tids: ["door-1", "door-2"], nbf: NOW_S });
    const second = await store.issueStored({
      term: "p1",
      publicKey: PUB_A,
      now: NOW_S,
      jti: "jti-0000000000002",
    });
    expect(second.gen).toBe(2);
    expect(await store.getSlot("s1")).toMatchObject({ gen: 2, min_gen: 2 });
    expect((await store.listTargets()).map((t) => t.registry_version)).toEqual([4, 4]);
    expect(await store.pendingRegistries()).toEqual([
      { tid: "door-1", version: 4, slots: [{ slot: "s1", min_gen: 2, status: "active" }] },
      { tid: "door-2", version: 4, slots: [{ slot: "s1", min_gen: 2, status: "active" }] },
    ]);
    await store.markPublished("door-1", 4);
    expect((await store.pendingRegistries()).map((p) => p.tid)).toEqual(["door-2"]);
  });

  it("binds the first public key and refuses another one later", async () => {
    const store = await seeded(openStore());
    await store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000001" });
    expect((await store.getTerminal("p1"))?.public_key).toBe(PUB_A);
    await expect(
      store.issueStored({ term: "p1", publicKey: PUB_B, now: NOW_S, jti: "jti-0000000000002" }),
    ).rejects.toMatchObject({ code: "terminal_key_mismatch" });
    expect((await store.getSlot("s1"))?.gen).toBe(1);
  });

  it("refuses a download without a grant, and for a revoked slot", async () => {
    const store = await seeded(openStore());
    await store.addUser({ id: "bob", passwordHash: "scrypt$x" }, "admin");
    await store.addTerminal({ serial: "p2", user: "bob" }, "admin");
    await expect(
      store.issueStored({ term: "p2", publicKey: PUB_B, now: NOW_S, jti: "jti-0000000000003" }),
    ).rejects.toMatchObject({ code: "no_grant" });
    await store.revoke({ slot: "s1" }, "admin");
    await expect(
      store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000004" }),
    ).rejects.toMatchObject({ code: "forbidden" });
    expect(await store.getSlot("s1")).toMatchObject({ gen: 0, status: "revoked" });
  });

  // Regression (security review): each download is a new generation and the target counts uses per
  // generation, so downloading a 2-use key again gave two more uses.
  it("lets a use-limited grant be downloaded once, while an unlimited one may be downloaded again", async () => {
    const store = await seeded(openStore());
    await store.addUser({ id: "guard", passwordHash: "scrypt$x" }, "admin");
    await store.addTerminal({ serial: "g1", user: "guard" }, "admin");
    await store.createSlot({ slot: "w7", tids: ["door-1"] }, "admin");
    await store.addGrant({ user: "guard", slot: "w7", mode: "stored", max_uses: 2 }, "admin");
    const first = await store.issueStored({
      term: "g1",
      publicKey: PUB_B,
      now: NOW_S,
      jti: "jti-0000000000010",
    });
    expect(first).toMatchObject({ slot: "w7", gen: 1, max_uses: 2 });
    await expect(
      store.issueStored({ term: "g1", publicKey: PUB_B, now: NOW_S, jti: "jti-0000000000011" }),
    ).rejects.toMatchObject({ code: "grant_used" });
    expect(await store.getSlot("w7")).toMatchObject({ gen: 1 });
    await store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000012" });
    const again = await store.issueStored({
      term: "p1",
      publicKey: PUB_A,
      now: NOW_S,
      jti: "jti-0000000000013",
    });
    expect(again).toMatchObject({ slot: "s1", gen: 2 });
  });

  it("writes an audit row for every change and every refusal, holding no secret", async () => {
    const store = await seeded(openStore());
    await store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000001" });
    await expect(store.addUser({ id: "alice", passwordHash: "scrypt$x" }, "admin")).rejects.toThrow();
    const audit = await store.listAudit(100);
    expect(audit.map((a) => [a.actor, a.op, a.subject, a.outcome])).toEqual([
      ["admin", "user.add", "alice", "ok"],
      ["admin", "terminal.add", "p1", "ok"],
      ["admin", "target.pair", "door-1", "ok"],
      ["admin", "target.pair", "door-2", "ok"],
      ["admin", "slot.create", "s1", "ok"],
      ["admin", "grant.add", "alice", "ok"],
      ["p1", "credential.download", "p1", "ok"],
      ["admin", "user.add", "alice", "already_exists"],
    ]);
    expect(audit[6]?.detail).toBe(JSON.stringify({ slot: "s1", gen: 1, jti: "jti-0000000000001" }));
    const all = JSON.stringify(audit);
    expect(all).not.toContain(TARGET_SECRET);
    expect(all).not.toContain("sha256$");
    expect(all).not.toContain("scrypt$");
    expect(audit.every((a) => a.ts === NOW_MS)).toBe(true);
  });

  it("keeps everything after the file is closed and opened again", async () => {
    const path = join(tempDir(), "sparekey.db");
    const first = SqliteStore.open(path, { now: () => NOW_MS });
    await seeded(first);
    await first.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000001" });
    const epoch = await first.nextEpoch();
    await first.close();
    const again = openStore(path);
    expect(await again.getSlot("s1")).toEqual({
      slot: "s1",
      gen: 1,
      min_gen: 1,
      status: "active",
      created: NOW_S,
      tids: ["door-1", "door-2"],
    });
    expect((await again.getTerminal("p1"))?.public_key).toBe(PUB_A);
    expect(await again.nextEpoch()).toBe(epoch + 1);
    expect((await again.listAudit(1000)).length).toBe(7);
  });

  it("raises a floor with below-gen but never lowers it", async () => {
    const store = await seeded(openStore());
    await store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000001" });
    await store.issueStored({ term: "p1", publicKey: PUB_A, now: NOW_S, jti: "jti-0000000000002" });
    await expect(store.revoke({ slot: "s1", belowGen: 1 }, "admin")).rejects.toMatchObject({
      code: "bad_request",
    });
    expect(await store.revoke({ slot: "s1", belowGen: 3 }, "admin")).toMatchObject({
      min_gen: 3,
      status: "active",
    });
  });

  it("hands the authenticator what each kind of client needs", async () => {
    const store = await seeded(openStore());
    expect(await store.clientCredentials("door-1")).toEqual({
      kind: "target",
      secretHash: hashSecret(TARGET_SECRET),
    });
    expect(await store.clientCredentials("p1")).toEqual({
      kind: "phone",
      user: "alice",
      passwordHash: "scrypt$hash-not-checked-here",
      disabled: false,
    });
    expect(await store.clientCredentials("nobody")).toBeUndefined();
  });
});
