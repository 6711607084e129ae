import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { type DecodedToken, verifyToken } from "../../common/jws.js";
import type { MqttClient } from "../../common/mqtt.js";
import { floorChange } from "../../keyserver/grants.js";
import { hashPassword, hashSecret } from "../../keyserver/passwords.js";
import type { RateLimitOptions } from "../../keyserver/rate-limit.js";
import { openKeyServerState } from "../../keyserver/state.js";
import type { Challenge, TargetEvent } from "../../schemas/messages.js";
import type { RpcReply } from "../../schemas/rpc.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { runKeyServerOn, tempDataDir } from "../helpers/keyserver.js";
import { nextJson, waitFor } from "../helpers/wait.js";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const TARGET_SECRET = "t".repeat(43);
const PERIOD_MS = 100;
const topics = new Topics();

/**
 * door-1 in slot s1. alice: relay on s1. bob: stored on s1 only. carol: stored on s1, remote unlock
 * needs her password. dave: relay on s1, revoked. erin: relay on s1 from next year.
 */
async function startSystem(options: { passwordRateLimit?: RateLimitOptions } = {}) {
  const dataDir = await tempDataDir();
  const state = openKeyServerState(dataDir);
  const { store } = state;
  for (const user of ["alice", "bob", "carol", "dave", "erin"]) {
    await store.addUser({ id: user, passwordHash: await hashPassword(`${user}-password`, FAST) }, "admin");
    await store.addTerminal({ serial: `p-${user}`, user }, "admin");
  }
  await store.addTarget({ tid: "door-1", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.addTarget({ tid: "door-2", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-1"] }, "admin");
  await store.addGrant({ user: "alice", slot: "s1", mode: "relay" }, "admin");
  await store.addGrant({ user: "bob", slot: "s1", mode: "stored" }, "admin");
  await store.addGrant({ user: "carol", slot: "s1", mode: "stored", unlock_password: true }, "admin");
  await store.addGrant({ user: "dave", slot: "s1", mode: "relay" }, "admin");
  const nextYear = Math.floor(Date.now() / 1000) + 365 * 86_400;
  await store.addGrant({ user: "erin", slot: "s1", mode: "relay", nbf: nextYear }, "admin");
  const { ks, connect } = await runKeyServerOn(state, { unlockMinWaitMs: 300, ...options });
  /** A phone's line epoch, as its retained status says (a terminal uses Date.now at connect). */
  const EPOCH = 1_700_000_000_000;
  /** A phone connected; unless told otherwise, its `online` status is out and the key server saw it. */
  const phone = async (user: string, options: { online?: boolean } = {}) => {
    const term = `p-${user}`;
    const c = await connect(term, user, `${user}-password`);
    await c.subscribeAsync(topics.rpcReply(term), { qos: 1 });
    if (options.online !== false) {
      const status = JSON.stringify({ v: 1, state: "online", epoch: EPOCH });
      await c.publishAsync(topics.terminalStatus(term), status, { qos: 1, retain: true });
      await waitFor(
        () => ks.terminalStatusView?.onlineEpoch(term) === EPOCH,
        "the key server saw the status",
      );
    }
    return c;
  };
  /** Plays door-1: publishes challenges and answers unlock commands as told. */
  const target = async () => {
    const c = await connect("door-1", "door-1", TARGET_SECRET);
    const publish = async (): Promise<string> => {
      const nonce = randomBytes(16).toString("base64url");
      const ch: Challenge = { v: 1, tid: "door-1", nonce, period_ms: PERIOD_MS, ts: Date.now() };
      await c.publishAsync(topics.challenge("door-1"), JSON.stringify(ch), { qos: 0, retain: true });
      await waitFor(() => ks.challengeView?.isLive("door-1", nonce) === true, "the key server saw the nonce");
      return nonce;
    };
    const event = (e: Omit<TargetEvent, "v" | "tid" | "ts">) =>
      c.publishAsync(topics.events("door-1"), JSON.stringify({ v: 1, tid: "door-1", ts: Date.now(), ...e }), {
        qos: 1,
      });
    return { client: c, publish, event };
  };
  return { dataDir, state, ks, phone, target, EPOCH };
}

async function rpc(
  client: MqttClient,
  term: string,
  op: string,
  body: Record<string, unknown>,
): Promise<RpcReply> {
  const id = randomBytes(8).toString("hex");
  const reply = nextJson<RpcReply>(client, topics.rpcReply(term), (r) => r.id === id);
  await client.publishAsync(topics.rpcRequest(term, op), JSON.stringify({ v: 1, id, ...body }), { qos: 1 });
  return reply;
}

function refusal(reply: RpcReply, code: string, message: string): void {
  expect(reply).toEqual({ v: 1, id: reply.id, ok: false, error: { code, message } });
}

describe("key server relay op", () => {
  it("signs a relay frame for a nonce the target published, at the slot's generation, with rising seq", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const nonce = await door.publish();
    const alice = await sys.phone("alice");
    const before = Date.now();
    const reply = await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce });
    expect(reply.ok).toBe(true);
    const result = reply.result as { frame: string; slot: string; gen: number; seq: number };
    const frame = verifyToken(result.frame, TokenType.relay, sys.state.issuer.keyForKid);
    expect(frame.payload).toEqual({
      v: 1,
      tid: "door-1",
      slot: "s1",
      gen: 1,
      term: "p-alice",
      user: "alice",
      epoch: sys.EPOCH,
      nonce,
      seq: result.seq,
      iat: frame.payload.iat,
    });
    expect(result).toEqual({ frame: result.frame, slot: "s1", gen: 1, seq: frame.payload.seq });
    expect(result.seq).toBeGreaterThanOrEqual(before);

    // One frame per challenge: a second one could be held back and replayed after the line is cut.
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce, slot: "s1" }),
      "nonce_used",
      "a relay frame for this challenge was signed already",
    );

    // After one rotation the previous nonce still signs once (the target accepts it for one period).
    const next = await door.publish();
    const third = await door.publish();
    const again = await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: next, slot: "s1" });
    expect(again.ok).toBe(true);
    expect((again.result as { seq: number }).seq).toBeGreaterThan(result.seq);
    expect((await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: third })).ok).toBe(true);

    // Three relays of one (term, tid, slot) within a minute: one audit row, plus the refusal.
    const rows = (await sys.state.store.listAudit(100)).filter((r) => r.op === "relay");
    expect(rows.map((r) => [r.actor, r.subject, r.outcome])).toEqual([
      ["p-alice", "door-1", "ok"],
      ["p-alice", "door-1", "nonce_used"],
    ]);
  });

  it("refuses a nonce the target never published, and one two rotations old, with unknown_nonce", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const old = await door.publish();
    const alice = await sys.phone("alice");
    const made = randomBytes(16).toString("base64url");
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: made }),
      "unknown_nonce",
      "nonce is not a challenge target door-1 published",
    );
    await door.publish();
    await door.publish();
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: old }),
      "unknown_nonce",
      "nonce is not a challenge target door-1 published",
    );
    const rows = (await sys.state.store.listAudit(100)).filter((r) => r.op === "relay");
    expect(rows.map((r) => r.outcome)).toEqual(["unknown_nonce", "unknown_nonce"]);
  });

  it("signs no relay frame while it knows no online status of the caller, and signs with its current epoch", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const alice = await sys.phone("alice", { online: false });
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: await door.publish() }),
      "terminal_not_online",
      "no online status of this terminal is known",
    );
    const status = (state: string, epoch: number) => JSON.stringify({ v: 1, state, epoch });
    const term = topics.terminalStatus("p-alice");
    await alice.publishAsync(term, status("online", 7), { qos: 1, retain: true });
    await waitFor(() => sys.ks.terminalStatusView?.onlineEpoch("p-alice") === 7, "the online status");
    const reply = await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: await door.publish() });
    const { frame } = reply.result as { frame: string };
    expect(verifyToken(frame, TokenType.relay, sys.state.issuer.keyForKid).payload.epoch).toBe(7);
    // The line was cut (its will): nothing is signed, not even for the old epoch.
    await alice.publishAsync(term, status("offline", 7), { qos: 1, retain: true });
    await waitFor(
      () => sys.ks.terminalStatusView?.onlineEpoch("p-alice") === undefined,
      "the offline status",
    );
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce: await door.publish() }),
      "terminal_not_online",
      "no online status of this terminal is known",
    );
  });

  it("refuses a revoked grant with grant_revoked", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const nonce = await door.publish();
    const dave = await sys.phone("dave");
    expect((await rpc(dave, "p-dave", "relay", { tid: "door-1", nonce })).ok).toBe(true);
    const out: string[] = [];
    const code = await runAdmin(
      ["--data", sys.dataDir, "revoke-grant", "--user", "dave", "--slot", "s1", "--mode", "relay"],
      { out: (t) => out.push(t), err: (t) => out.push(t) },
    );
    expect([code, out]).toEqual([0, ["relay grant of user dave on slot s1 revoked\n"]]);
    refusal(
      await rpc(dave, "p-dave", "relay", { tid: "door-1", nonce }),
      "grant_revoked",
      "the relay grant for target door-1 is revoked",
    );
  });

  it("refuses a user without a relay grant with no_grant, a grant not yet valid, and a revoked slot", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const nonce = await door.publish();
    const bob = await sys.phone("bob");
    refusal(
      await rpc(bob, "p-bob", "relay", { tid: "door-1", nonce }),
      "no_grant",
      "no relay grant covers target door-1",
    );
    const alice = await sys.phone("alice");
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-2", nonce }),
      "no_grant",
      "no relay grant covers target door-2",
    );
    const erin = await sys.phone("erin");
    refusal(
      await rpc(erin, "p-erin", "relay", { tid: "door-1", nonce }),
      "grant_not_valid_now",
      "the relay grant for target door-1 is not valid at this time",
    );
    await sys.state.store.revoke({ slot: "s1" }, "admin", floorChange);
    refusal(
      await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce }),
      "slot_revoked",
      "slot s1 is revoked",
    );
  });
});

describe("key server unlock op", () => {
  /** door-1 answers each unlock command with `answer(cmd_id)` after checking its signature. */
  async function answering(
    sys: Awaited<ReturnType<typeof startSystem>>,
    answer: (cmdId: string) => Omit<TargetEvent, "v" | "tid" | "ts"> | undefined,
  ) {
    const door = await sys.target();
    const commands: Array<DecodedToken<typeof TokenType.unlock>> = [];
    door.client.on("message", (topic, payload) => {
      if (topic !== topics.unlock("door-1")) return;
      const cmd = verifyToken(payload.toString(), TokenType.unlock, sys.state.issuer.keyForKid);
      commands.push(cmd);
      const e = answer(cmd.payload.cmd_id);
      if (e) void door.event(e);
    });
    await door.client.subscribeAsync(topics.unlock("door-1"), { qos: 1 });
    return { ...door, commands };
  }

  it("sends a signed command bound to the current nonce and reports applied when the target applies it", async () => {
    const sys = await startSystem();
    const door = await answering(sys, (cmd_id) => ({ type: "unlock_applied", cmd_id, term: "p-alice" }));
    const nonce = await door.publish();
    const alice = await sys.phone("alice");
    const reply = await rpc(alice, "p-alice", "unlock", { tid: "door-1", duration_ms: 2000 });
    const cmd = door.commands[0];
    expect(cmd?.payload).toEqual({
      v: 1,
      tid: "door-1",
      nonce,
      cmd_id: cmd?.payload.cmd_id,
      term: "p-alice",
      duration_ms: 2000,
      iat: cmd?.payload.iat,
      exp: (cmd?.payload.iat ?? 0) + 5,
    });
    expect(reply).toEqual({
      v: 1,
      id: reply.id,
      ok: true,
      result: { outcome: "applied", cmd_id: cmd?.payload.cmd_id },
    });
    const rows = (await sys.state.store.listAudit(100)).filter((r) => r.op === "unlock");
    expect(rows.map((r) => [r.outcome, JSON.parse(r.detail)])).toEqual([
      ["sent", { cmd_id: cmd?.payload.cmd_id, duration_ms: 2000 }],
      ["applied", { cmd_id: cmd?.payload.cmd_id }],
    ]);
  });

  it("passes the target's refusal reason through", async () => {
    const sys = await startSystem();
    const door = await answering(sys, (cmd_id) => ({
      type: "unlock_refused",
      cmd_id,
      reason: "unlock_replayed",
    }));
    await door.publish();
    const bob = await sys.phone("bob");
    const reply = await rpc(bob, "p-bob", "unlock", { tid: "door-1" });
    const cmdId = door.commands[0]?.payload.cmd_id;
    expect(door.commands[0]?.payload.duration_ms).toBe(5000);
    expect(reply).toEqual({
      v: 1,
      id: reply.id,
      ok: true,
      result: { outcome: "refused", cmd_id: cmdId, reason: "unlock_replayed" },
    });
  });

  it("reports timed_out when the target never answers, and ignores an answer for another cmd_id", async () => {
    const sys = await startSystem();
    const door = await answering(sys, () => ({ type: "unlock_applied", cmd_id: "x".repeat(22) }));
    await door.publish();
    const bob = await sys.phone("bob");
    const reply = await rpc(bob, "p-bob", "unlock", { tid: "door-1" });
    expect(reply).toEqual({
      v: 1,
      id: reply.id,
      ok: true,
      result: { outcome: "timed_out", cmd_id: door.commands[0]?.payload.cmd_id },
    });
  });

  it("answers other requests while an unlock waits for its target", async () => {
    const sys = await startSystem();
    const door = await answering(sys, () => undefined);
    const nonce = await door.publish();
    const bob = await sys.phone("bob");
    const alice = await sys.phone("alice");
    const waiting = rpc(bob, "p-bob", "unlock", { tid: "door-1" });
    await waitFor(() => door.commands.length === 1, "the unlock command");
    const relayed = await rpc(alice, "p-alice", "relay", { tid: "door-1", nonce });
    expect(relayed.ok).toBe(true);
    expect(((await waiting).result as { outcome: string }).outcome).toBe("timed_out");
  });

  it("requires the password again when the grant says so, and refuses a wrong one", async () => {
    const sys = await startSystem();
    const door = await answering(sys, (cmd_id) => ({ type: "unlock_applied", cmd_id }));
    await door.publish();
    const carol = await sys.phone("carol");
    refusal(
      await rpc(carol, "p-carol", "unlock", { tid: "door-1" }),
      "password_required",
      "this grant needs the password for a remote unlock",
    );
    refusal(
      await rpc(carol, "p-carol", "unlock", { tid: "door-1", password: "wrong-password" }),
      "password_required",
      "the password is wrong",
    );
    expect(door.commands).toEqual([]);
    const ok = await rpc(carol, "p-carol", "unlock", { tid: "door-1", password: "carol-password" });
    expect(ok.result).toEqual({ outcome: "applied", cmd_id: door.commands[0]?.payload.cmd_id });
    const audit = JSON.stringify(await sys.state.store.listAudit(100));
    expect(audit).not.toContain("carol-password");
    expect(audit).not.toContain("wrong-password");
  });

  it("refuses password re-entries with rate_limited after too many wrong ones, even the right one", async () => {
    const sys = await startSystem({ passwordRateLimit: { maxFailures: 2, blockMs: 60_000 } });
    const door = await answering(sys, (cmd_id) => ({ type: "unlock_applied", cmd_id }));
    await door.publish();
    const carol = await sys.phone("carol");
    for (const password of ["wrong-1", "wrong-2"])
      expect((await rpc(carol, "p-carol", "unlock", { tid: "door-1", password })).error?.code).toBe(
        "password_required",
      );
    refusal(
      await rpc(carol, "p-carol", "unlock", { tid: "door-1", password: "carol-password" }),
      "rate_limited",
      "too many wrong passwords; try again later",
    );
    expect(door.commands).toEqual([]);
  });

  it("refuses with unknown_nonce when no challenge of the target is known, and no_grant without a grant", async () => {
    const sys = await startSystem();
    const alice = await sys.phone("alice");
    refusal(
      await rpc(alice, "p-alice", "unlock", { tid: "door-1" }),
      "unknown_nonce",
      "no challenge of target door-1 is known",
    );
    refusal(
      await rpc(alice, "p-alice", "unlock", { tid: "door-2" }),
      "no_grant",
      "no grant covers target door-2",
    );
  });
});

describe("challenge follower", () => {
  it("ignores a challenge whose payload names another target than its topic", async () => {
    const sys = await startSystem();
    const door = await sys.target();
    const real = await door.publish();
    const forged = randomBytes(16).toString("base64url");
    // door-1 may publish only on its own topic; a payload claiming door-2 there must not count for either.
    const lie: Challenge = { v: 1, tid: "door-2", nonce: forged, period_ms: PERIOD_MS, ts: Date.now() };
    await door.client.publishAsync(topics.challenge("door-1"), JSON.stringify(lie), { qos: 0 });
    const marker = await door.publish();
    expect(sys.ks.challengeView?.isLive("door-1", forged)).toBe(false);
    expect(sys.ks.challengeView?.isLive("door-2", forged)).toBe(false);
    expect(sys.ks.challengeView?.current("door-1")).toEqual({
      nonce: marker,
      previous: real,
      period_ms: PERIOD_MS,
      seen: sys.ks.challengeView?.current("door-1")?.seen,
    });
  });
});
