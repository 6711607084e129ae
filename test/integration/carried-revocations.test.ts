import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { silentLogger } from "../../common/log.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget, revokeFleet } from "../../keyserver/admin/targets.js";
import { Target } from "../../target/target.js";
import { carriedVersion, readCarried } from "../../terminal/carried.js";
import { download } from "../../terminal/download.js";
import { login } from "../../terminal/login.js";
import { startUse } from "../../terminal/use.js";
import { adminContext, connectAsKeyserver, observeTarget, startTestGateway } from "../helpers/gateway.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const TID = "door-1";

async function phone(gateway: RunningGateway, root: string, user: string, serial: string, slot: string) {
  const admin = adminContext(gateway);
  const password = `${user}-password-0123`;
  await addUser(admin, { user, password });
  await addTerminal(admin, { serial, user });
  await createSlot(admin, { slot, tids: [TID] });
  await addGrant(admin, { slot, user, mode: "stored" });
  const dir = join(root, serial);
  await login({ dir, brokerUrl: gateway.url, serial, user, password, logger });
  return dir;
}

describe("carried revocations over the real gateway", () => {
  it("a target cut off from the key server applies the fleet list a phone carried, and the revoked slot is refused slot_revoked", async () => {
    const gateway = await startTestGateway();
    const admin = adminContext(gateway);
    const root = tempDir("sparekey-carried-");
    const config = await pairTarget(admin, {
      tid: TID,
      out: join(root, `${TID}.json`),
      brokerUrl: gateway.url,
      stateDir: join(root, "state"),
      periodMs: 200,
    });
    const alice = await phone(gateway, root, "alice", "PHONE-ALICE", "alice-key");
    const bob = await phone(gateway, root, "bob", "PHONE-BOB", "bob-key");
    await download({ dir: alice, target: TID, logger });
    await download({ dir: bob, target: TID, logger });
    await gateway.keyserver.publishNow();
    const watch = await observeTarget(gateway, TID);
    let at = watch.mark();
    let target = new Target({ config, logger });
    await target.start();
    await watch.event(at, (e) => e.type === "registry_applied", "the registry");
    await target.stop();

    // While the target is away, bob's slot is revoked fleet-wide; alice's phone is online and keeps the list.
    const online = await startUse({ dir: alice, tid: TID, logger });
    onTestFinished(() => online.close());
    await revokeFleet(admin, { slot: "bob-key" });
    await gateway.keyserver.publishNow();
    await waitFor(() => {
      const kept = readCarried(alice, "PHONE-ALICE").revocations;
      return kept !== undefined && carriedVersion(kept, { kind: "revocations" }) === 1;
    }, "alice's phone to keep fleet list version 1");
    await online.close();

    // The key server goes away and the broker forgets its list: the target cannot learn of it itself.
    await gateway.keyserver.stop();
    const broker = await connectAsKeyserver(gateway, "cleaner");
    await broker.publishAsync(`sparekey/v1/fleet/revocations`, "", { qos: 1, retain: true });
    at = watch.mark();
    target = new Target({ config, logger });
    await target.start();
    onTestFinished(() => target.stop());
    await watch.state(at, (s) => s.state === "unavailable", "the target back");
    expect(target.stats().revocations_version).toBe(0);

    // Alice uses the target: her phone carries the list first, the target applies it.
    at = watch.mark();
    const use = await startUse({ dir: alice, tid: TID, logger });
    onTestFinished(() => use.close());
    const ack = await watch.event(at, (e) => e.type === "revocations_applied", "the carried list applied");
    expect(ack).toEqual({ v: 1, tid: TID, ts: expect.any(Number), type: "revocations_applied", version: 1 });
    await watch.state(at, (s) => s.state === "available" && s.term === "PHONE-ALICE", "alice's session");
    expect(target.stats().revocations_version).toBe(1);

    // Bob's phone, whose slot the carried list revokes, is refused.
    at = watch.mark();
    const refused = await startUse({ dir: bob, tid: TID, logger });
    onTestFinished(() => refused.close());
    const event = await watch.event(at, (e) => e.type === "auth_refused", "bob refused");
    expect(event).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "slot_revoked",
      slot: "bob-key",
      term: "PHONE-BOB",
    });
  });
});
