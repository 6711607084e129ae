import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt } from "../../common/mqtt.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { writeFob } from "../../keyserver/admin/fob.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { TargetState } from "../../schemas/messages.js";
import { Target } from "../../target/target.js";
import { download } from "../../terminal/download.js";
import { terminalPaths } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { startFobUse, startUse, type UseHandle } from "../../terminal/use.js";
import { adminContext, observeTarget, runAdmin, startTestGateway } from "../helpers/gateway.js";
import { nextMessage, tempDir } from "../helpers/wait.js";

const TID = "front-door";
const SLOT = "alice-key";
const PASSWORD = "alice-password-0123";
const PERIOD_MS = 150;
const logger = silentLogger();

/** The demo's setup over the real gateway: alice, her phone, the lock, her slot, her gen-1 fob. */
async function building(gateway: RunningGateway, periodMs = PERIOD_MS) {
  const root = tempDir("sparekey-story-");
  await runAdmin(gateway, addUser, { user: "alice", password: PASSWORD });
  await runAdmin(gateway, addTerminal, { serial: "PHONE-ALICE", user: "alice" });
  const config = await runAdmin(gateway, pairTarget, {
    tid: TID,
    out: join(root, `${TID}.json`),
    brokerUrl: gateway.url,
    stateDir: join(root, "target-state"),
    periodMs,
  });
  await runAdmin(gateway, createSlot, { slot: SLOT, tids: [TID] });
  await runAdmin(gateway, addGrant, { slot: SLOT, user: "alice", mode: "stored" });
  const fobFile = join(root, "FOB-ALICE.json");
  const fob = await writeFob(adminContext(gateway), {
    slot: SLOT,
    fob: "FOB-ALICE",
    out: fobFile,
    brokerUrl: gateway.url,
  });
  await gateway.keyserver.publishNow();
  return { root, config, fobFile, fobGen: fob.gen };
}

async function startTarget(config: TargetConfig): Promise<Target> {
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  return target;
}

/** Closed at the end of the test unless the story closed it first (close is idempotent enough). */
function closing(handle: UseHandle): UseHandle {
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  onTestFinished(close);
  return { ...handle, close };
}

async function registryVersion(gateway: RunningGateway): Promise<number> {
  const record = (await gateway.state.store.listTargets()).find((t) => t.tid === TID);
  if (!record) throw new Error(`${TID} is not paired`);
  return record.registry_version;
}

const available = (term: string) => (s: TargetState) => s.state === "available" && s.term === term;
const unavailable = (s: TargetState) => s.state === "unavailable";

describe("the lost-key story over the real gateway", () => {
  it("the fob opens, the phone replaces it, the lost fob is refused and the lock falls back", async () => {
    const gateway = await startTestGateway();
    const { root, config, fobFile, fobGen } = await building(gateway);
    expect(fobGen).toBe(1);
    const watch = await observeTarget(gateway, TID);

    let at = watch.mark();
    await startTarget(config);
    const firstVersion = await registryVersion(gateway);
    expect(await watch.event(at, (e) => e.type === "registry_applied", "the first registry")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "registry_applied",
      version: firstVersion,
    });

    // 1. The fob (gen 1) opens the lock, and the retained state says who holds it.
    at = watch.mark();
    const fob = closing(await startFobUse({ fobFile, tid: TID, logger }));
    const fobOpened = await watch.state(at, available("FOB-ALICE"), "the fob to open the lock");
    expect(fobOpened).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: SLOT,
      term: "FOB-ALICE",
      since: expect.any(Number),
      reason: "frame_accepted",
      mode: "fob",
    });
    expect(await watch.event(at, (e) => e.type === "auth_established", "the fob's session")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_established",
      slot: SLOT,
      term: "FOB-ALICE",
      gen: 1,
    });
    const late = await connectMqtt({
      url: gateway.url,
      clientId: "keyserver-late-dashboard",
      username: "keyserver",
      password: gateway.state.secret,
      reconnectPeriod: 0,
    });
    onTestFinished(() => late.endAsync());
    const retained = nextMessage(late, watch.topics.state(TID), { accept: (m) => m.retain });
    await late.subscribeAsync(watch.topics.state(TID), { qos: 1 });
    expect(JSON.parse((await retained).payload.toString())).toEqual(fobOpened);

    // 2. The fob is lost: its frames stop (its line stays up, so only the target's timeout ends it).
    at = watch.mark();
    await fob.sender.stop();
    expect(await watch.state(at, unavailable, "the lock to fall back after the fob")).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: expect.any(Number),
      reason: "frame_timeout",
    });
    await fob.close();

    // 3. The phone logs in and downloads gen 2; the registry update reaches the lock.
    const phoneDir = join(root, "phone");
    await login({
      dir: phoneDir,
      brokerUrl: gateway.url,
      serial: "PHONE-ALICE",
      user: "alice",
      password: PASSWORD,
      logger,
    });
    at = watch.mark();
    const cred = await download({ dir: phoneDir, target: TID, logger });
    expect({ slot: cred.slot, gen: cred.gen, tids: cred.tids }).toEqual({ slot: SLOT, gen: 2, tids: [TID] });
    const newVersion = await registryVersion(gateway);
    expect(newVersion).toBeGreaterThan(firstVersion);
    expect(
      await watch.event(at, (e) => e.type === "registry_applied", "the registry update after the download"),
    ).toEqual({ v: 1, tid: TID, ts: expect.any(Number), type: "registry_applied", version: newVersion });

    // 4. The phone opens the lock.
    at = watch.mark();
    const phone = closing(await startUse({ dir: phoneDir, tid: TID, logger }));
    expect(await watch.state(at, available("PHONE-ALICE"), "the phone to open the lock")).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: SLOT,
      term: "PHONE-ALICE",
      user: "alice",
      since: expect.any(Number),
      reason: "frame_accepted",
      mode: "stored",
    });

    // 5. Someone finds the lost fob: refused for its old generation, the phone's session stays.
    at = watch.mark();
    const finder = closing(await startFobUse({ fobFile, tid: TID, logger }));
    const refusal = await watch.event(
      at,
      (e) => e.type === "auth_refused" && e.term === "FOB-ALICE",
      "the lost fob's refusal",
    );
    await finder.close();
    const { ts: _ts, ...rest } = refusal;
    expect(rest).toEqual({
      v: 1,
      tid: TID,
      type: "auth_refused",
      reason: "old_generation",
      slot: SLOT,
      term: "FOB-ALICE",
    });
    expect(watch.states.slice(at.states).filter((s) => s.term === "FOB-ALICE")).toEqual([]);

    // 6. Alice walks away: her frames stop reaching the lock, which falls back by its own timeout.
    at = watch.mark();
    await phone.sender.stop();
    expect(
      await watch.state(at, unavailable, "the lock to fall back after the phone", 20 * PERIOD_MS),
    ).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: expect.any(Number),
      reason: "frame_timeout",
    });
    expect(watch.invalid).toEqual([]);
  });

  it("ends a session at once with terminal_offline when the holder disconnects", async () => {
    const gateway = await startTestGateway();
    // A long period: the frame timeout (2 periods) cannot be what ends the session here.
    const { config, fobFile } = await building(gateway, 5000);
    const watch = await observeTarget(gateway, TID);
    let at = watch.mark();
    await startTarget(config);
    await watch.event(at, (e) => e.type === "registry_applied", "the first registry");
    at = watch.mark();
    const fob = closing(await startFobUse({ fobFile, tid: TID, logger }));
    await watch.state(at, available("FOB-ALICE"), "the fob to open the lock");
    at = watch.mark();
    await fob.close();
    const ended = await watch.event(at, (e) => e.type === "session_ended", "the session to end");
    expect(ended).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "terminal_offline",
      slot: SLOT,
      term: "FOB-ALICE",
    });
    expect(await watch.state(at, unavailable, "the lock to fall back", 4000)).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: expect.any(Number),
      reason: "terminal_offline",
    });
  });

  it("refuses a phone with a wrong password with auth_failed and writes nothing", async () => {
    const gateway = await startTestGateway();
    await building(gateway);
    const dir = join(tempDir(), "phone");
    const err = await login({
      dir,
      brokerUrl: gateway.url,
      serial: "PHONE-ALICE",
      user: "alice",
      password: "not-alices-password",
      logger,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("auth_failed");
    expect((err as SparekeyError).message).not.toContain("not-alices-password");
    const paths = terminalPaths(dir);
    expect([existsSync(dir), existsSync(paths.profile), existsSync(paths.key)]).toEqual([
      false,
      false,
      false,
    ]);
  });

  it("answers no_grant to a user without a grant and stores no credential", async () => {
    const gateway = await startTestGateway();
    await building(gateway);
    await runAdmin(gateway, addUser, { user: "bob", password: "bob-password-0123" });
    await runAdmin(gateway, addTerminal, { serial: "PHONE-BOB", user: "bob" });
    const dir = join(tempDir(), "phone");
    await login({
      dir,
      brokerUrl: gateway.url,
      serial: "PHONE-BOB",
      user: "bob",
      password: "bob-password-0123",
      logger,
    });
    const err = await download({ dir, target: TID, logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("no_grant");
    expect(existsSync(terminalPaths(dir).wallet)).toBe(false);
    const slot = await gateway.state.store.getSlot(SLOT);
    expect(slot?.gen).toBe(1);
  });
});
