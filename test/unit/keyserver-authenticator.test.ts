import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { silentLogger } from "../../common/log.js";
import { KeyServerAuthenticator } from "../../keyserver/authenticator.js";
import { nextGeneration } from "../../keyserver/grants.js";
import { hashPassword, hashSecret } from "../../keyserver/passwords.js";
import type { RateLimitOptions } from "../../keyserver/rate-limit.js";
import { openSqliteStore } from "../../keyserver/store/sqlite/index.js";
import { tempDir } from "../helpers/wait.js";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const KS_SECRET = "k".repeat(43);
const TARGET_SECRET = "t".repeat(43);
const FOB_SECRET = "f".repeat(43);
const PUB = "A".repeat(43);

async function setup(rateLimit?: RateLimitOptions) {
  const store = openSqliteStore(join(tempDir(), "sparekey.db"));
  onTestFinished(() => store.close());
  await store.addUser({ id: "alice", passwordHash: await hashPassword("alice-password", FAST) }, "admin");
  await store.addTerminal({ serial: "p1", user: "alice" }, "admin");
  await store.addTarget({ tid: "door-1", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-1"] }, "admin");
  await store.issueFob(
    {
      fob: "fob-1",
      secretHash: hashSecret(FOB_SECRET),
      publicKey: PUB,
      slot: "s1",
      now: 1,
      jti: "jti-0000000000001",
    },
    "admin",
    nextGeneration,
  );
  const auth = new KeyServerAuthenticator({
    store,
    keyserverSecret: KS_SECRET,
    logger: silentLogger(),
    ...(rateLimit ? { rateLimit } : {}),
  });
  const login = (clientId: string, username: string | undefined, password: string | undefined) =>
    auth.authenticate(clientId, username, password === undefined ? undefined : Buffer.from(password));
  return { store, auth, login };
}

describe("KeyServerAuthenticator", () => {
  it("accepts each role with its own secret", async () => {
    const { login } = await setup();
    expect(await login("keyserver", "keyserver", KS_SECRET)).toEqual({ role: "keyserver", id: "keyserver" });
    expect(await login("keyserver-b", "keyserver", KS_SECRET)).toEqual({
      role: "keyserver",
      id: "keyserver-b",
    });
    expect(await login("door-1", "door-1", TARGET_SECRET)).toEqual({ role: "target", id: "door-1" });
    expect(await login("p1", "alice", "alice-password")).toEqual({ role: "terminal", id: "p1" });
    expect(await login("fob-1", "fob-1", FOB_SECRET)).toEqual({ role: "terminal", id: "fob-1" });
  });

  it("refuses each role with a wrong secret or a wrong user name", async () => {
    const { login } = await setup();
    expect(await login("keyserver", "keyserver", TARGET_SECRET)).toBeUndefined();
    expect(await login("keyserver", "admin", KS_SECRET)).toBeUndefined();
    expect(await login("door-1", "door-1", KS_SECRET)).toBeUndefined();
    expect(await login("door-1", "other", TARGET_SECRET)).toBeUndefined();
    expect(await login("p1", "alice", "wrong-password")).toBeUndefined();
    expect(await login("p1", "bob", "alice-password")).toBeUndefined();
    expect(await login("p1", "alice", undefined)).toBeUndefined();
    expect(await login("fob-1", "fob-1", TARGET_SECRET)).toBeUndefined();
  });

  it("refuses unknown and invalid client ids", async () => {
    const { login } = await setup();
    expect(await login("nobody", "alice", "alice-password")).toBeUndefined();
    expect(await login("a/b", "alice", "alice-password")).toBeUndefined();
    expect(await login("#", "keyserver", KS_SECRET)).toBeUndefined();
    expect(await login("", "keyserver", KS_SECRET)).toBeUndefined();
  });

  it("reserves keyserver ids: a target's or user's secret never logs in under one", async () => {
    const { login } = await setup();
    expect(await login("keyserver", "alice", "alice-password")).toBeUndefined();
    expect(await login("keyserver-x", "door-1", TARGET_SECRET)).toBeUndefined();
  });

  it("refuses even the right password after N failures, until the block ends", async () => {
    let now = 1_000_000;
    const { login } = await setup({ maxFailures: 3, windowMs: 60_000, blockMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) expect(await login("p1", "alice", "wrong")).toBeUndefined();
    expect(await login("p1", "alice", "alice-password")).toBeUndefined();
    now += 59_000;
    expect(await login("p1", "alice", "alice-password")).toBeUndefined();
    now += 1_001;
    expect(await login("p1", "alice", "alice-password")).toEqual({ role: "terminal", id: "p1" });
  });

  it("blocks per user too, whichever client id the guesses come from", async () => {
    let now = 0;
    const { store, login } = await setup({ maxFailures: 3, now: () => now });
    await store.addTerminal({ serial: "p2", user: "alice" }, "admin");
    await login("x1", "alice", "guess");
    await login("x2", "alice", "guess");
    await login("x3", "alice", "guess");
    expect(await login("p2", "alice", "alice-password")).toBeUndefined();
    now += 61_000;
    expect(await login("p2", "alice", "alice-password")).toEqual({ role: "terminal", id: "p2" });
  });

  it("does not lock out targets or the key server, whose secrets cannot be guessed", async () => {
    const { login } = await setup({ maxFailures: 2 });
    for (let i = 0; i < 5; i++) {
      await login("door-1", "door-1", "guess");
      await login("keyserver", "keyserver", "guess");
    }
    expect(await login("door-1", "door-1", TARGET_SECRET)).toEqual({ role: "target", id: "door-1" });
    expect(await login("keyserver", "keyserver", KS_SECRET)).toEqual({ role: "keyserver", id: "keyserver" });
  });
});
