import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { decodeToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser, revokeGrant } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import type { TargetConfig } from "../../schemas/config.js";
import { KeyserverStatus, type TargetState } from "../../schemas/messages.js";
import { RelayResult, RpcReply } from "../../schemas/rpc.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { parseJson, validator } from "../../schemas/validate.js";
import { Target } from "../../target/target.js";
import { download } from "../../terminal/download.js";
import { readWallet } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { startRelayUse, startUse, type UseHandle } from "../../terminal/use.js";
import {
  connectAsKeyserver,
  observeTarget,
  runAdmin,
  startTestGateway,
  type TargetObserver,
} from "../helpers/gateway.js";
import { nextJson, tempDir, waitFor } from "../helpers/wait.js";

/*
 * The relay key over the whole system: the real gateway (aedes on port 0, key server, SQLite, the
 * store's authenticator), real in-process targets and the real terminal code. Where a test needs a
 * terminal that misbehaves, a plain MQTT client logs in as the phone and does what the real one won't.
 */

const FRONT = "front-door";
const BACK = "back-door";
const RELAY_SLOT = "bob-relay";
const STORED_SLOT = "alice-key";
const PERIOD_MS = 150;
const FAST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 };
const logger = silentLogger();
const topics = new Topics();

interface Phone {
  serial: string;
  user: string;
  password: string;
}
const BOB: Phone = { serial: "PHONE-BOB", user: "bob", password: "bob-password-0123" };
const ALICE: Phone = { serial: "PHONE-ALICE", user: "alice", password: "alice-password-0123" };
const DAVE: Phone = { serial: "PHONE-DAVE", user: "dave", password: "dave-password-0123" };

const replies = validator(RpcReply, "rpc reply");
const relayResults = validator(RelayResult, "relay result");
const statuses = validator(KeyserverStatus, "keyserver status");

/**
 * bob: relay on bob-relay (front-door). alice: stored on alice-key (front-door). dave: relay on
 * bob-relay too (revoked where a test needs it). Every target in `tids` is paired; none is started.
 */
async function building(gateway: RunningGateway, tids: string[] = [FRONT]) {
  const root = tempDir("sparekey-relay-");
  for (const p of [BOB, ALICE, DAVE]) {
    await runAdmin(gateway, addUser, { user: p.user, password: p.password, scrypt: FAST_SCRYPT });
    await runAdmin(gateway, addTerminal, { serial: p.serial, user: p.user });
  }
  const configs = new Map<string, TargetConfig>();
  for (const tid of tids) {
    const config = await runAdmin(gateway, pairTarget, {
      tid,
      out: join(root, `${tid}.json`),
      brokerUrl: gateway.url,
      stateDir: join(root, `${tid}-state`),
      periodMs: PERIOD_MS,
    });
    configs.set(tid, config);
  }
  await runAdmin(gateway, createSlot, { slot: RELAY_SLOT, tids: [FRONT] });
  await runAdmin(gateway, addGrant, { slot: RELAY_SLOT, user: BOB.user, mode: "relay" });
  await runAdmin(gateway, addGrant, { slot: RELAY_SLOT, user: DAVE.user, mode: "relay" });
  await runAdmin(gateway, createSlot, { slot: STORED_SLOT, tids: [FRONT] });
  await runAdmin(gateway, addGrant, { slot: STORED_SLOT, user: ALICE.user, mode: "stored" });
  await gateway.keyserver.publishNow();
  const config = (tid: string): TargetConfig => {
    const c = configs.get(tid);
    if (!c) throw new Error(`${tid} is not paired`);
    return c;
  };
  return { root, config };
}

/** Start a target and wait until it runs on the key server's registry. */
async function startTarget(config: TargetConfig, watch: TargetObserver): Promise<Target> {
  const at = watch.mark();
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  await watch.event(at, (e) => e.type === "registry_applied", `${config.tid}'s registry`);
  return target;
}

async function loggedIn(gateway: RunningGateway, root: string, phone: Phone): Promise<string> {
  const dir = join(root, phone.serial);
  await login({
    dir,
    brokerUrl: gateway.url,
    serial: phone.serial,
    user: phone.user,
    password: phone.password,
    logger,
  });
  return dir;
}

/** Closed at the end of the test unless the test closed it first. */
function closing(handle: UseHandle): UseHandle {
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= handle.close();
    return closing;
  };
  onTestFinished(close);
  return { ...handle, close };
}

/**
 * A phone as a plain MQTT client: it calls the RPCs itself and publishes whatever it likes. Like a real
 * terminal it sets an `offline` will and says `online` with its line epoch, which the key server signs into
 * every relay frame.
 */
async function rawPhone(gateway: RunningGateway, phone: Phone) {
  const epoch = Date.now();
  const status = (state: "online" | "offline") =>
    topics.message("terminalStatus", { term: phone.serial }, { v: 1, state, epoch });
  const client: MqttClient = await connectMqtt({
    url: gateway.url,
    clientId: phone.serial,
    username: phone.user,
    password: phone.password,
    reconnectPeriod: 0,
    will: status("offline"),
  });
  onTestFinished(() => client.endAsync());
  await client.subscribeAsync(topics.rpcReply(phone.serial), { qos: 1 });
  const online = status("online");
  await client.publishAsync(online.topic, online.payload, { qos: online.qos, retain: online.retain });
  await waitFor(
    () => gateway.keyserver.terminalStatusView?.onlineEpoch(phone.serial) === epoch,
    "the key server to see the phone online",
  );
  /** Nonces a frame was asked for already: the key server signs one frame per challenge. */
  const asked = new Set<string>();

  async function relay(body: { tid: string; nonce: string; slot?: string }): Promise<RpcReply> {
    const id = randomBytes(8).toString("hex");
    const reply = nextJson<unknown>(
      client,
      topics.rpcReply(phone.serial),
      (r) => replies.is(r) && r.id === id,
    );
    await client.publishAsync(
      topics.rpcRequest(phone.serial, "relay"),
      JSON.stringify({ v: 1, id, ...body }),
      { qos: 1 },
    );
    return replies.parse(await reply);
  }

  /** A genuine relay frame for the target's current nonce, once the key server has seen that nonce. */
  async function frame(target: Target, slot?: string) {
    const tid = target.currentChallenge().tid;
    let nonce = "";
    await waitFor(() => {
      nonce = target.currentChallenge().nonce;
      return !asked.has(nonce) && gateway.keyserver.challengeView?.current(tid)?.nonce === nonce;
    }, "the key server to follow a fresh challenge of the target");
    asked.add(nonce);
    const reply = await relay({ tid, nonce, ...(slot !== undefined ? { slot } : {}) });
    if (!reply.ok) throw new Error(`relay refused: ${JSON.stringify(reply.error)}`);
    const result = relayResults.parse(reply.result);
    return { ...result, payload: decodeToken(result.frame, TokenType.relay).payload };
  }

  const publishFrame = (tid: string, frame: string) =>
    client.publishAsync(topics.frames(tid, phone.serial), frame, { qos: 0 });
  /**
   * A target holds no status of a terminal until it first sees a relay frame of it: that frame is refused
   * (`terminal_status_unknown`) and the target follows the phone's retained status from then on.
   */
  async function introduce(target: Target, watch: TargetObserver): Promise<void> {
    const taken = target.stats().status_accepted;
    const at = watch.mark();
    await publishFrame(target.currentChallenge().tid, (await frame(target)).frame);
    await watch.event(at, (e) => e.reason === "terminal_status_unknown", "the first relay frame's refusal");
    await waitFor(() => target.stats().status_accepted > taken, "the target to take the phone's status");
  }

  return { client, relay, frame, publishFrame, introduce, epoch };
}

/** A key-server-role client following `keyserver/status`: proof the status really went out. */
async function keyserverStatusWatch(gateway: RunningGateway) {
  const client = await connectAsKeyserver(gateway, "status-watch");
  const seen: KeyserverStatus[] = [];
  client.on("message", (topic, payload) => {
    const value = parseJson(payload.toString("utf8"));
    if (topic === topics.keyserverStatus() && statuses.is(value)) seen.push(value);
  });
  await client.subscribeAsync(topics.keyserverStatus(), { qos: 1 });
  return {
    until: (state: "online" | "offline") =>
      waitFor(() => seen.at(-1)?.state === state, `keyserver/status ${state}`),
  };
}

/** Wait for `n` fresh challenges after `from`: n periods of the target's own clock, no fixed sleep. */
async function periods(watch: TargetObserver, from: { challenges: number }, n: number, exclude?: string) {
  await waitFor(
    () =>
      new Set(
        watch.challenges
          .slice(from.challenges)
          .map((c) => c.nonce)
          .filter((x) => x !== exclude),
      ).size >= n,
    `${n} fresh challenges`,
    n * PERIOD_MS + 5000,
  );
}

const relayOpen = (s: TargetState) => s.state === "available" && s.term === BOB.serial && s.mode === "relay";
const unavailable = (s: TargetState) => s.state === "unavailable";

describe("relay key over the real gateway", () => {
  it("opens a relay session (retained state names the phone, mode relay) while the wallet holds no credential", async () => {
    const gateway = await startTestGateway();
    const { root, config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    await startTarget(config(FRONT), watch);
    const bobDir = await loggedIn(gateway, root, BOB);

    const at = watch.mark();
    const relay = closing(await startRelayUse({ dir: bobDir, tid: FRONT, logger }));
    const opened = await watch.state(at, relayOpen, "the relay session");
    expect(opened).toEqual({
      v: 1,
      tid: FRONT,
      state: "available",
      slot: RELAY_SLOT,
      term: BOB.serial,
      user: BOB.user,
      since: expect.any(Number),
      reason: "frame_accepted",
      mode: "relay",
    });
    expect(await watch.event(at, (e) => e.type === "auth_established", "the relay session's event")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "auth_established",
      slot: RELAY_SLOT,
      term: BOB.serial,
      user: BOB.user,
      gen: 1,
    });

    // A dashboard connecting now gets the same state from the retained copy.
    const late = await connectAsKeyserver(gateway, "late-dashboard");
    const retained = nextJson<unknown>(late, topics.state(FRONT));
    await late.subscribeAsync(topics.state(FRONT), { qos: 1 });
    expect(await retained).toEqual(opened);

    // The phone keeps nothing that could make a frame: no credential for the slot, for any slot.
    await waitFor(() => relay.sender.snapshot().framesSent >= 2, "a second relayed frame");
    expect(readWallet(bobDir, BOB.serial).credentials).toEqual({});
    expect(relay.sender.snapshot()).toMatchObject({ tid: FRONT, slot: RELAY_SLOT, mode: "relay" });
    expect(watch.invalid).toEqual([]);
  });

  it("ends the relay session with terminal_offline when the phone's socket is destroyed", async () => {
    const gateway = await startTestGateway();
    const { root, config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    await startTarget(config(FRONT), watch);
    const bobDir = await loggedIn(gateway, root, BOB);
    let at = watch.mark();
    const relay = closing(await startRelayUse({ dir: bobDir, tid: FRONT, logger }));
    await watch.state(at, relayOpen, "the relay session");

    at = watch.mark();
    relay.client.stream.destroy();
    expect(await watch.event(at, (e) => e.type === "session_ended", "the session to end")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "terminal_offline",
      slot: RELAY_SLOT,
      term: BOB.serial,
      user: BOB.user,
    });
    expect(await watch.state(at, unavailable, "the lock to drop")).toEqual({
      v: 1,
      tid: FRONT,
      state: "unavailable",
      since: expect.any(Number),
      reason: "terminal_offline",
    });
  });

  it("ends the relay session with keyserver_offline when the key server stops, and the phone stops sending", async () => {
    const gateway = await startTestGateway();
    const { root, config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    const target = await startTarget(config(FRONT), watch);
    const bobDir = await loggedIn(gateway, root, BOB);
    let at = watch.mark();
    const relay = closing(await startRelayUse({ dir: bobDir, tid: FRONT, logger }));
    await watch.state(at, relayOpen, "the relay session");
    await waitFor(() => target.stats().accepted >= 2, "the session to run on relayed frames");

    at = watch.mark();
    await gateway.keyserver.stop();
    expect(await watch.event(at, (e) => e.type === "session_ended", "the session to end")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "keyserver_offline",
      slot: RELAY_SLOT,
      term: BOB.serial,
      user: BOB.user,
    });
    expect(await watch.state(at, unavailable, "the lock to drop")).toEqual({
      v: 1,
      tid: FRONT,
      state: "unavailable",
      since: expect.any(Number),
      reason: "keyserver_offline",
    });
    // The phone's status line says why it stopped.
    await waitFor(() => !relay.sender.snapshot().line.up, "the phone's line monitor to see the cut");
    expect(relay.sender.snapshot().line).toEqual({ up: false, connected: true, why: "key server offline" });

    // Three periods of silence, seen from both ends: nothing sent, nothing reaching the lock.
    const sent = relay.sender.snapshot().framesSent;
    const before = target.stats();
    const quiet = watch.mark();
    await periods(watch, quiet, 3);
    expect(relay.sender.snapshot().framesSent).toBe(sent);
    const after = target.stats();
    expect({ accepted: after.accepted, refused_total: after.refused_total, refused: after.refused }).toEqual({
      accepted: before.accepted,
      refused_total: before.refused_total,
      refused: before.refused,
    });
    expect(watch.events.slice(quiet.events).filter((e) => e.type === "auth_refused")).toEqual([]);
    expect(watch.states.slice(quiet.states).filter((s) => s.state === "available")).toEqual([]);
  });

  it("refuses with stale_nonce an old relay frame a misbehaving phone publishes after the cut", async () => {
    const gateway = await startTestGateway();
    const { config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    const target = await startTarget(config(FRONT), watch);
    const status = await keyserverStatusWatch(gateway);
    const phone = await rawPhone(gateway, BOB);
    await phone.introduce(target, watch);

    // One genuine frame opens the lock: the frames the key server signs are good ones.
    let at = watch.mark();
    const first = await phone.frame(target);
    await phone.publishFrame(FRONT, first.frame);
    await watch.state(at, relayOpen, "the first relayed frame to open the lock");

    // A second one, for the next challenge (the key server signs one frame per challenge), is kept
    // back, to be played after the line is cut.
    await periods(watch, watch.mark(), 1, first.payload.nonce);
    const kept = await phone.frame(target);
    expect(kept.payload.nonce).not.toBe(first.payload.nonce);
    expect(kept.seq).toBeGreaterThan(first.seq);
    const afterKept = watch.mark();
    at = watch.mark();
    await gateway.keyserver.stop();
    await status.until("offline");
    await watch.state(at, unavailable, "the lock to drop the relay session");

    // The lock's nonce moves on by two challenges: the kept frame answers neither current nor previous.
    await periods(watch, afterKept, 2, kept.payload.nonce);
    expect(target.currentChallenge().nonce).not.toBe(kept.payload.nonce);
    at = watch.mark();
    await phone.publishFrame(FRONT, kept.frame);
    expect(await watch.event(at, (e) => e.type === "auth_refused", "the old frame's refusal")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "stale_nonce",
      slot: RELAY_SLOT,
      term: BOB.serial,
    });

    // With the key server back, only the nonce still stands between the kept frame and the lock.
    await gateway.keyserver.start();
    await status.until("online");
    const accepted = target.stats().accepted;
    at = watch.mark();
    await phone.publishFrame(FRONT, kept.frame);
    expect(await watch.event(at, (e) => e.type === "auth_refused", "the replay's refusal")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "stale_nonce",
      slot: RELAY_SLOT,
      term: BOB.serial,
    });
    expect(target.stats().accepted).toBe(accepted);
    expect(watch.states.slice(at.states).filter((s) => s.state === "available")).toEqual([]);
  });

  it("refuses a genuine relay frame sent to another target with wrong_target", async () => {
    const gateway = await startTestGateway();
    const { config } = await building(gateway, [FRONT, BACK]);
    const front = await observeTarget(gateway, FRONT);
    const back = await observeTarget(gateway, BACK);
    const frontTarget = await startTarget(config(FRONT), front);
    const backTarget = await startTarget(config(BACK), back);
    const phone = await rawPhone(gateway, BOB);
    await phone.introduce(frontTarget, front);

    const forFront = await phone.frame(frontTarget);
    const atBack = back.mark();
    await phone.publishFrame(BACK, forFront.frame);
    expect(await back.event(atBack, (e) => e.type === "auth_refused", "back-door's refusal")).toEqual({
      v: 1,
      tid: BACK,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "wrong_target",
      slot: RELAY_SLOT,
      term: BOB.serial,
    });
    expect(backTarget.stats().accepted).toBe(0);

    // The very same frame opens the target it names: only the target was wrong.
    const atFront = front.mark();
    await phone.publishFrame(FRONT, forFront.frame);
    await front.state(atFront, relayOpen, "front-door to open on the same frame");
    expect(back.states.slice(atBack.states).filter((s) => s.state === "available")).toEqual([]);
  });

  it("refuses a relay frame for a slot the target's registry does not hold with unknown_slot; the key server signs no slot the target is not in", async () => {
    const gateway = await startTestGateway();
    const { config } = await building(gateway, [FRONT, BACK]);
    await runAdmin(gateway, createSlot, { slot: "bob-back", tids: [BACK] });
    await runAdmin(gateway, addGrant, { slot: "bob-back", user: BOB.user, mode: "relay" });
    await gateway.keyserver.publishNow();
    const front = await observeTarget(gateway, FRONT);
    const back = await observeTarget(gateway, BACK);
    let frontTarget = await startTarget(config(FRONT), front);
    await startTarget(config(BACK), back);
    const phone = await rawPhone(gateway, BOB);

    // The key server will not put back-door's slot on a frame for front-door.
    const nonce = frontTarget.currentChallenge().nonce;
    await waitFor(
      () => gateway.keyserver.challengeView?.isLive(FRONT, nonce) === true,
      "the nonce to be followed",
    );
    const refused = await phone.relay({ tid: FRONT, nonce, slot: "bob-back" });
    expect(refused).toEqual({
      v: 1,
      id: refused.id,
      ok: false,
      error: { code: "no_grant", message: expect.any(String) },
    });

    // So the only way to that case is a registry update that never reached the lock: front-door is
    // down while bob-new is added to it, and the retained registry is lost before it comes back.
    const versionBefore = frontTarget.stats().registry_version;
    await frontTarget.stop();
    await runAdmin(gateway, createSlot, { slot: "bob-new", tids: [FRONT] });
    await runAdmin(gateway, addGrant, { slot: "bob-new", user: BOB.user, mode: "relay" });
    await gateway.keyserver.publishNow();
    const record = (await gateway.state.store.listTargets()).find((t) => t.tid === FRONT);
    expect(record?.registry_version).toBeGreaterThan(versionBefore);
    const eraser = await connectAsKeyserver(gateway, "registry-eraser");
    await eraser.publishAsync(topics.registry(FRONT), Buffer.alloc(0), { qos: 1, retain: true });
    const restarted = new Target({ config: config(FRONT), logger });
    await restarted.start();
    onTestFinished(() => restarted.stop());
    frontTarget = restarted;
    expect(frontTarget.stats().registry_version).toBe(versionBefore);

    const stale = await phone.frame(frontTarget, "bob-new");
    expect(stale.payload).toMatchObject({ tid: FRONT, slot: "bob-new", term: BOB.serial });
    const at = front.mark();
    await phone.publishFrame(FRONT, stale.frame);
    expect(await front.event(at, (e) => e.type === "auth_refused", "front-door's refusal")).toEqual({
      v: 1,
      tid: FRONT,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "unknown_slot",
      slot: "bob-new",
      term: BOB.serial,
    });
    expect(frontTarget.stats()).toMatchObject({ accepted: 0, registry_version: versionBefore });
  });

  it("keeps a stored-key session open through the key server going down for several periods", async () => {
    const gateway = await startTestGateway();
    const { root, config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    const target = await startTarget(config(FRONT), watch);
    const status = await keyserverStatusWatch(gateway);
    const aliceDir = await loggedIn(gateway, root, ALICE);
    await download({ dir: aliceDir, target: FRONT, logger });

    let at = watch.mark();
    const phone = closing(await startUse({ dir: aliceDir, tid: FRONT, logger }));
    const opened = await watch.state(
      at,
      (s) => s.state === "available" && s.term === ALICE.serial,
      "the stored key to open the lock",
    );
    expect(opened).toMatchObject({ slot: STORED_SLOT, mode: "stored", reason: "frame_accepted" });

    at = watch.mark();
    const statusesTaken = target.stats().status_accepted;
    await gateway.keyserver.stop();
    await status.until("offline");
    await waitFor(
      () => target.stats().status_accepted > statusesTaken,
      "the lock to take the offline status",
    );
    const accepted = target.stats().accepted;
    await periods(watch, watch.mark(), 4);
    expect(target.stats().accepted).toBeGreaterThan(accepted);
    expect(watch.states.slice(at.states)).toEqual([]);
    // A registry the download bumped may still land in this window (the key server publishes from its
    // outbox); it is not about the session, which must see no refusal and no end.
    const sessionEvents = watch.events
      .slice(at.events)
      .filter((e) => e.type !== "auth_established" && e.type !== "registry_applied");
    expect(sessionEvents).toEqual([]);
    expect(target.currentState()).toEqual(opened);
    expect(phone.sender.snapshot().line.up).toBe(true);

    await gateway.keyserver.start();
    await status.until("online");
    await periods(watch, watch.mark(), 1);
    expect(target.currentState()).toEqual(opened);
  });
});

describe("key server relay refusals over the real gateway", () => {
  it("refuses relay with unknown_nonce, grant_revoked and no_grant, and signs for the same callers otherwise", async () => {
    const gateway = await startTestGateway();
    const { config } = await building(gateway);
    const watch = await observeTarget(gateway, FRONT);
    const target = await startTarget(config(FRONT), watch);
    const bob = await rawPhone(gateway, BOB);
    const dave = await rawPhone(gateway, DAVE);
    const alice = await rawPhone(gateway, ALICE);
    const refusal = (reply: RpcReply, code: string) =>
      expect(reply).toEqual({ v: 1, id: reply.id, ok: false, error: { code, message: expect.any(String) } });

    // A nonce the lock never published: bob's grant is live, the nonce is not.
    await bob.frame(target);
    const invented = randomBytes(16).toString("base64url");
    refusal(await bob.relay({ tid: FRONT, nonce: invented }), "unknown_nonce");

    // dave's grant works, then is revoked, and relay stops at once.
    await dave.frame(target);
    await runAdmin(gateway, revokeGrant, { slot: RELAY_SLOT, user: DAVE.user, mode: "relay" });
    const nonce = target.currentChallenge().nonce;
    await waitFor(
      () => gateway.keyserver.challengeView?.isLive(FRONT, nonce) === true,
      "the nonce to be followed",
    );
    refusal(await dave.relay({ tid: FRONT, nonce }), "grant_revoked");

    // alice holds a stored grant on the lock, not a relay one.
    refusal(await alice.relay({ tid: FRONT, nonce }), "no_grant");
    refusal(await alice.relay({ tid: FRONT, nonce, slot: STORED_SLOT }), "no_grant");

    const audit = (await gateway.state.store.listAudit(100)).filter((r) => r.op === "relay");
    expect(audit.map((r) => [r.actor, r.outcome]).filter(([, o]) => o !== "ok")).toEqual(
      expect.arrayContaining([
        [BOB.serial, "unknown_nonce"],
        [DAVE.serial, "grant_revoked"],
        [ALICE.serial, "no_grant"],
      ]),
    );
  });
});
