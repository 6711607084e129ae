import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { signToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget, revocationStatus, revokeFleet } from "../../keyserver/admin/targets.js";
import type { TargetConfig } from "../../schemas/config.js";
import { TargetEvent } from "../../schemas/messages.js";
import { type RevocationsPayload, TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { parseJson, validator } from "../../schemas/validate.js";
import { Target } from "../../target/target.js";
import { download } from "../../terminal/download.js";
import { login } from "../../terminal/login.js";
import { startUse } from "../../terminal/use.js";
import { adminContext, connectAsKeyserver, observeTarget, startTestGateway } from "../helpers/gateway.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const PERIOD_MS = 200;
const FLEET_SIZE = 20;
const TIDS = Array.from({ length: FLEET_SIZE }, (_, i) => `door-${String(i + 1).padStart(2, "0")}`);
const OFFLINE = "door-20";
const topics = new Topics();

async function startTarget(config: TargetConfig): Promise<Target> {
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  return target;
}

async function pair(gateway: RunningGateway, root: string, tid: string): Promise<TargetConfig> {
  return pairTarget(adminContext(gateway), {
    tid,
    out: join(root, `${tid}.json`),
    brokerUrl: gateway.url,
    stateDir: join(root, `${tid}-state`),
    periodMs: PERIOD_MS,
  });
}

/** Every event of every target, as one dashboard with the key server's role sees them. */
async function watchFleet(gateway: RunningGateway) {
  const client = await connectAsKeyserver(gateway, "fleet-dashboard");
  const events = validator(TargetEvent, "event");
  const seen: TargetEvent[] = [];
  client.on("message", (_topic, payload) => {
    const value = parseJson(payload.toString("utf8"));
    if (events.is(value)) seen.push(value);
  });
  await client.subscribeAsync(`${topics.prefix}/targets/+/events`, { qos: 1 });
  return {
    seen,
    mark: () => seen.length,
    acks(from: number, version: number): string[] {
      return seen
        .slice(from)
        .filter((e) => e.type === "revocations_applied" && e.version === version)
        .map((e) => e.tid);
    },
    async waitAcks(from: number, version: number, tids: readonly string[]): Promise<void> {
      await waitFor(
        () => {
          const acked = new Set(this.acks(from, version));
          return tids.every((t) => acked.has(t));
        },
        `${tids.length} acknowledgements of version ${version}`,
        10_000,
      );
    },
  };
}

describe("fleet revocation over the real gateway", () => {
  it("20 targets confirm, a stopped one confirms from the retained copy, a rolled-back list is ignored", async () => {
    const gateway = await startTestGateway();
    const admin = adminContext(gateway);
    const root = tempDir("sparekey-fleet-");
    const configs = new Map<string, TargetConfig>();
    for (const tid of TIDS) configs.set(tid, await pair(gateway, root, tid));
    await createSlot(admin, { slot: "master-key", tids: TIDS });
    await createSlot(admin, { slot: "retired-key", tids: TIDS });
    await gateway.keyserver.publishNow();
    const fleet = await watchFleet(gateway);
    const targets = new Map<string, Target>();
    await Promise.all([...configs].map(async ([tid, config]) => targets.set(tid, await startTarget(config))));
    const target = (tid: string): Target => {
      const t = targets.get(tid);
      if (!t) throw new Error(`${tid} is not running`);
      return t;
    };

    // Version 1: every target applies and acknowledges it.
    let at = fleet.mark();
    expect(await revokeFleet(admin, { slot: "retired-key" })).toEqual({
      version: 1,
      revoked: [{ slot: "retired-key" }],
    });
    await gateway.keyserver.publishNow();
    await fleet.waitAcks(at, 1, TIDS);
    const firstAck = fleet.seen
      .slice(at)
      .find((e) => e.type === "revocations_applied" && e.tid === "door-01");
    expect(firstAck).toEqual({
      v: 1,
      tid: "door-01",
      ts: expect.any(Number),
      type: "revocations_applied",
      version: 1,
    });

    // Version 2 is published while one target is stopped: 19 confirm, it stays pending.
    await target(OFFLINE).stop();
    targets.delete(OFFLINE);
    const online = TIDS.filter((t) => t !== OFFLINE);
    at = fleet.mark();
    expect(await revokeFleet(admin, { slot: "master-key" })).toEqual({
      version: 2,
      revoked: [{ slot: "master-key" }, { slot: "retired-key" }],
    });
    await gateway.keyserver.publishNow();
    await fleet.waitAcks(at, 2, online);
    await waitFor(
      async () =>
        (await revocationStatus(admin)).targets.filter((t) => t.status === "confirmed").length ===
        online.length,
      "19 confirmations recorded",
    );
    expect(await revocationStatus(admin)).toEqual({
      version: 2,
      published: true,
      revoked: [{ slot: "master-key" }, { slot: "retired-key" }],
      targets: TIDS.map((tid) =>
        tid === OFFLINE
          ? { tid, status: "pending", confirmed_version: 1 }
          : { tid, status: "confirmed", confirmed_version: 2 },
      ),
    });
    expect(fleet.acks(at, 2)).not.toContain(OFFLINE);

    // Started again, it reads the retained list and confirms.
    at = fleet.mark();
    const offlineConfig = configs.get(OFFLINE);
    if (!offlineConfig) throw new Error("no config");
    targets.set(OFFLINE, await startTarget(offlineConfig));
    await fleet.waitAcks(at, 2, [OFFLINE]);
    await waitFor(
      async () => (await revocationStatus(admin)).targets.every((t) => t.status === "confirmed"),
      "every target confirmed",
    );
    expect((await revocationStatus(admin)).targets).toEqual(
      TIDS.map((tid) => ({ tid, status: "confirmed", confirmed_version: 2 })),
    );
    expect(target(OFFLINE).stats().revocations_version).toBe(2);

    // A rolled-back list (version 1, validly signed by the issuer, retained) is ignored by all 20.
    at = fleet.mark();
    const rollback: RevocationsPayload = {
      v: 1,
      version: 1,
      revoked: [{ slot: "retired-key" }],
      iat: Math.floor(Date.now() / 1000),
    };
    const attacker = await connectAsKeyserver(gateway, "rollback");
    await attacker.publishAsync(
      topics.revocations(),
      signToken(TokenType.revocations, rollback, gateway.state.issuer.signingKey),
      { qos: 1, retain: true },
    );
    await waitFor(
      () => TIDS.every((tid) => target(tid).stats().revocations_ignored === 1),
      "every target to ignore the rolled-back list",
    );
    expect(TIDS.map((tid) => target(tid).stats().revocations_version)).toEqual(TIDS.map(() => 2));
    // No acknowledgement (nor any other revocation event) for the old version.
    expect(fleet.seen.slice(at).filter((e) => e.type.startsWith("revocations_"))).toEqual([]);

    // A target restarted now gets the rolled-back copy as the retained one and still keeps version 2.
    await target("door-01").stop();
    const config01 = configs.get("door-01");
    if (!config01) throw new Error("no config");
    const restarted = await startTarget(config01);
    targets.set("door-01", restarted);
    await waitFor(() => restarted.stats().revocations_ignored === 1, "the restarted target to ignore it");
    expect(restarted.stats().revocations_version).toBe(2);
    expect(fleet.acks(at, 1)).toEqual([]);
  });

  /**
   * Alice's phone holds a session on door-01; then `admin revoke --slot alice-key --fleet`. Returns the
   * session_ended event and the fleet version's acknowledgement.
   */
  async function revokeOpenSession() {
    const gateway = await startTestGateway();
    const admin = adminContext(gateway);
    const root = tempDir("sparekey-fleet-session-");
    const tid = "door-01";
    const config = await pair(gateway, root, tid);
    await addUser(admin, { user: "alice", password: "alice-password-0123" });
    await addTerminal(admin, { serial: "PHONE-ALICE", user: "alice" });
    await createSlot(admin, { slot: "alice-key", tids: [tid] });
    await addGrant(admin, { slot: "alice-key", user: "alice", mode: "stored" });
    await gateway.keyserver.publishNow();
    const watch = await observeTarget(gateway, tid);
    let at = watch.mark();
    await startTarget(config);
    await watch.event(at, (e) => e.type === "registry_applied", "the first registry");

    const phone = join(root, "phone");
    await login({
      dir: phone,
      brokerUrl: gateway.url,
      serial: "PHONE-ALICE",
      user: "alice",
      password: "alice-password-0123",
      logger,
    });
    at = watch.mark();
    await download({ dir: phone, target: tid, logger });
    await watch.event(at, (e) => e.type === "registry_applied", "the registry with the new generation");
    at = watch.mark();
    const use = await startUse({ dir: phone, tid, logger });
    onTestFinished(() => use.close());
    await watch.state(at, (s) => s.state === "available" && s.term === "PHONE-ALICE", "the phone's session");

    at = watch.mark();
    await revokeFleet(admin, { slot: "alice-key" });
    await gateway.keyserver.publishNow();
    const ended = await watch.event(at, (e) => e.type === "session_ended", "the session to end");
    const ack = await watch.event(at, (e) => e.type === "revocations_applied", "the acknowledgement");
    const fallback = await watch.state(at, (s) => s.state === "unavailable", "the lock to fall back");
    return { tid, ended, ack, fallback };
  }

  // Regression: the key server published the registries before the fleet list, so the registry's
  // `slot_revoked` ended the session first and the reason the operator gave never showed.
  it("ends an open session on a slot revoked fleet-wide with revoked_fleet and acknowledges the list", async () => {
    const { tid, ended, ack, fallback } = await revokeOpenSession();
    expect(ack).toEqual({ v: 1, tid, ts: expect.any(Number), type: "revocations_applied", version: 1 });
    expect(ended).toEqual({
      v: 1,
      tid,
      ts: expect.any(Number),
      type: "session_ended",
      reason: "revoked_fleet",
      slot: "alice-key",
      term: "PHONE-ALICE",
      user: "alice",
    });
    expect(fallback).toEqual({
      v: 1,
      tid,
      state: "unavailable",
      since: expect.any(Number),
      reason: "revoked_fleet",
    });
  });
});
