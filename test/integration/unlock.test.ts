import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import { decodeToken, signToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { TargetEvent } from "../../schemas/messages.js";
import { TokenType, type UnlockPayload } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { login } from "../../terminal/login.js";
import { unlock } from "../../terminal/unlock.js";
import {
  adminContext,
  connectAsKeyserver,
  observeTarget,
  startTestGateway,
  type TargetObserver,
} from "../helpers/gateway.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const TID = "front-door";
// Long enough that a replay sent right after the outcome still meets a live nonce (current or previous).
const PERIOD_MS = 1000;
const ALICE = { user: "alice", serial: "PHONE-ALICE", password: "alice-password-0123" };
const BOB = { user: "bob", serial: "PHONE-BOB", password: "bob-password-0123" };

/** The lock, alice (a plain stored grant) and bob (a grant that wants the password for remote unlock). */
async function building() {
  const gateway = await startTestGateway();
  const admin = adminContext(gateway);
  const root = tempDir("sparekey-unlock-");
  const config = await pairTarget(admin, {
    tid: TID,
    out: join(root, `${TID}.json`),
    brokerUrl: gateway.url,
    stateDir: join(root, "target-state"),
    periodMs: PERIOD_MS,
  });
  await createSlot(admin, { slot: "front-key", tids: [TID] });
  const dirs: Record<string, string> = {};
  for (const who of [ALICE, BOB]) {
    await addUser(admin, { user: who.user, password: who.password });
    await addTerminal(admin, { serial: who.serial, user: who.user });
    await addGrant(admin, {
      slot: "front-key",
      user: who.user,
      mode: "stored",
      ...(who === BOB ? { unlock_password: true } : {}),
    });
    const dir = join(root, who.serial);
    await login({
      dir,
      brokerUrl: gateway.url,
      serial: who.serial,
      user: who.user,
      password: who.password,
      logger,
    });
    dirs[who.serial] = dir;
  }
  await gateway.keyserver.publishNow();
  const watch = await observeTarget(gateway, TID);
  const commands = await captureCommands(gateway);
  const at = watch.mark();
  const target = await startTarget(config);
  await watch.event(at, (e) => e.type === "registry_applied", "the first registry");
  const dir = (serial: string): string => {
    const d = dirs[serial];
    if (d === undefined) throw new Error(`no phone ${serial}`);
    return d;
  };
  return { gateway, config, target, watch, commands, dir };
}

async function startTarget(config: TargetConfig): Promise<Target> {
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  return target;
}

/**
 * Every unlock command the key server puts on the target's line, tapped at the broker (the ACL lets no
 * client but the target subscribe there), and a client with the key server's role to publish again.
 */
async function captureCommands(gateway: RunningGateway) {
  const topic = new Topics().unlock(TID);
  const tokens: string[] = [];
  const tap = (packet: { topic: string; payload: Buffer | string }, client: { id: string } | null) => {
    if (packet.topic === topic && client?.id === "keyserver") tokens.push(packet.payload.toString());
  };
  gateway.broker.aedes.on("publish", tap);
  onTestFinished(() => void gateway.broker.aedes.off("publish", tap));
  const client = await connectAsKeyserver(gateway, "unlock-replayer");
  return {
    tokens,
    /** Publish `token` on the target's unlock line again, as only the key server's role may. */
    publish: (token: string) => client.publishAsync(topic, token, { qos: 1, retain: false }),
  };
}

const unlockEvent = (cmdId: string) => (e: TargetEvent) =>
  (e.type === "unlock_applied" || e.type === "unlock_refused") && e.cmd_id === cmdId;

/** Wait until the target has published `n` more challenges after `from`: older nonces are then dead. */
async function challengesPass(watch: TargetObserver, n: number): Promise<string> {
  const from = watch.mark();
  await waitFor(
    () => watch.challenges.length - from.challenges >= n,
    `${n} new challenges`,
    (n + 2) * PERIOD_MS,
  );
  const last = watch.challenges[watch.challenges.length - 1];
  if (!last) throw new Error("no challenge");
  return last.nonce;
}

function payloadOf(token: string): UnlockPayload {
  return decodeToken(token, TokenType.unlock).payload;
}

async function rejection(p: Promise<unknown>): Promise<SparekeyError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof SparekeyError)) throw new Error(`expected a SparekeyError, got ${String(err)}`);
  return err;
}

describe("terminal unlock over the real gateway", () => {
  it("opens the target once for duration_ms, then it falls back with unlock_elapsed", async () => {
    const { watch, commands, dir } = await building();
    const at = watch.mark();
    const result = await unlock({ dir: dir(ALICE.serial), tid: TID, durationMs: 400, logger });
    expect(result).toEqual({ outcome: "applied", cmd_id: expect.any(String) });
    const cmdId = result.cmd_id;
    expect(commands.tokens.map((t) => payloadOf(t).cmd_id)).toEqual([cmdId]);
    expect(payloadOf(commands.tokens[0] ?? "")).toMatchObject({
      tid: TID,
      term: ALICE.serial,
      duration_ms: 400,
    });

    expect(await watch.event(at, unlockEvent(cmdId), "the unlock to be applied")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "unlock_applied",
      term: ALICE.serial,
      cmd_id: cmdId,
    });
    const opened = await watch.state(at, (s) => s.state === "available", "the target to open");
    expect(opened).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      term: ALICE.serial,
      since: expect.any(Number),
      reason: "unlocked",
      mode: "unlock",
    });
    expect(await watch.event(at, (e) => e.type === "session_ended", "the unlock to elapse")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "unlock_elapsed",
      term: ALICE.serial,
      cmd_id: cmdId,
    });
    const closed = await watch.state(at, (s) => s.state === "unavailable", "the target to close");
    expect(closed).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: expect.any(Number),
      reason: "unlock_elapsed",
    });
    // Timers may fire a millisecond early; never hundreds.
    expect(closed.since - opened.since).toBeGreaterThanOrEqual(390);
  });

  it("refuses the same command published again with unlock_replayed", async () => {
    const { watch, commands, dir } = await building();
    let at = watch.mark();
    const result = await unlock({ dir: dir(ALICE.serial), tid: TID, durationMs: 5000, logger });
    expect(result.outcome).toBe("applied");
    await watch.event(at, unlockEvent(result.cmd_id), "the unlock to be applied");
    const captured = commands.tokens[0];
    if (captured === undefined) throw new Error("no command captured");

    at = watch.mark();
    await commands.publish(captured);
    expect(await watch.event(at, unlockEvent(result.cmd_id), "the replay's answer")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "unlock_refused",
      reason: "unlock_replayed",
      term: ALICE.serial,
      cmd_id: result.cmd_id,
    });
  });

  it("refuses a command bound to a nonce two challenges old with stale_nonce", async () => {
    const { gateway, watch, commands, dir } = await building();
    const result = await unlock({ dir: dir(ALICE.serial), tid: TID, durationMs: 200, logger });
    expect(result.outcome).toBe("applied");
    const captured = commands.tokens[0];
    if (captured === undefined) throw new Error("no command captured");
    const oldNonce = payloadOf(captured).nonce;
    const liveNonce = await challengesPass(watch, 2);

    // The captured (already applied) command, published again after the nonce moved on.
    let at = watch.mark();
    await commands.publish(captured);
    expect(await watch.event(at, unlockEvent(result.cmd_id), "the late command's answer")).toMatchObject({
      type: "unlock_refused",
      reason: "stale_nonce",
    });

    // A command never applied, validly signed, bound to the old nonce: refused for the nonce alone...
    const iat = Math.floor(Date.now() / 1000);
    const command = (nonce: string, cmdId: string): string =>
      signToken(
        TokenType.unlock,
        { v: 1, tid: TID, nonce, cmd_id: cmdId, term: ALICE.serial, duration_ms: 200, iat, exp: iat + 30 },
        gateway.state.issuer.signingKey,
      );
    at = watch.mark();
    await commands.publish(command(oldNonce, "late-command-0123456789"));
    expect(await watch.event(at, unlockEvent("late-command-0123456789"), "the old-nonce command")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "unlock_refused",
      reason: "stale_nonce",
      term: ALICE.serial,
      cmd_id: "late-command-0123456789",
    });
    // ...as the same command bound to the live nonce is applied.
    at = watch.mark();
    await commands.publish(command(liveNonce, "fresh-command-0123456789"));
    expect(
      (await watch.event(at, unlockEvent("fresh-command-0123456789"), "the live-nonce command")).type,
    ).toBe("unlock_applied");
  });

  it("asks for the password when the grant wants it, and unlocks with it", async () => {
    const { watch, commands, dir } = await building();
    const missing = await rejection(unlock({ dir: dir(BOB.serial), tid: TID, logger }));
    expect(missing.code).toBe("password_required");
    const wrong = await rejection(
      unlock({ dir: dir(BOB.serial), tid: TID, password: "not-bobs-password", logger }),
    );
    expect(wrong.code).toBe("password_required");
    expect(wrong.message).not.toContain("not-bobs-password");
    // Nothing reached the target's line for either refusal.
    expect(commands.tokens).toEqual([]);

    const at = watch.mark();
    const result = await unlock({
      dir: dir(BOB.serial),
      tid: TID,
      password: BOB.password,
      durationMs: 300,
      logger,
    });
    expect(result).toEqual({ outcome: "applied", cmd_id: expect.any(String) });
    expect((await watch.event(at, unlockEvent(result.cmd_id), "bob's unlock")).type).toBe("unlock_applied");
    expect(commands.tokens.map((t) => payloadOf(t).term)).toEqual([BOB.serial]);
  });

  it("answers timed_out for a stopped target (its last nonce is still known) and applies nothing late", async () => {
    const { config, target, watch, dir } = await building();
    await target.stop();
    const started = Date.now();
    const result = await unlock({ dir: dir(ALICE.serial), tid: TID, logger });
    // keyserver/ops/unlock.ts: the key server still knows the retained challenge, sends the command and
    // waits max(3 periods, 3 s) for the target's event.
    expect(result).toEqual({ outcome: "timed_out", cmd_id: expect.any(String) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);

    // Started again, the target never applies the command the key server gave up on.
    const at = watch.mark();
    await startTarget(config);
    await challengesPass(watch, 1);
    expect(watch.events.slice(at.events).filter((e) => e.cmd_id === result.cmd_id)).toEqual([]);
    expect(watch.states.slice(at.states).filter((s) => s.state === "available")).toEqual([]);
  });

  it("refuses with unknown_nonce for a paired target that never published a challenge", async () => {
    const { gateway, dir } = await building();
    const admin = adminContext(gateway);
    const root = tempDir("sparekey-unlock-back-");
    await pairTarget(admin, {
      tid: "back-door",
      out: join(root, "back-door.json"),
      brokerUrl: gateway.url,
      stateDir: join(root, "back-door-state"),
      periodMs: PERIOD_MS,
    });
    await createSlot(admin, { slot: "back-key", tids: ["back-door"] });
    await addGrant(admin, { slot: "back-key", user: ALICE.user, mode: "stored" });
    const err = await rejection(unlock({ dir: dir(ALICE.serial), tid: "back-door", logger }));
    expect(err.code).toBe("unknown_nonce");
  });
});
