import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { silentLogger } from "../../common/log.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addTerminal, addUser } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget, revokeSlot } from "../../keyserver/admin/targets.js";
import type { TargetConfig } from "../../schemas/config.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { download } from "../../terminal/download.js";
import { readProfile, readWallet } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { connectProfile } from "../../terminal/session.js";
import { adminContext, observeTarget, startTestGateway } from "../helpers/gateway.js";
import { nextJson, tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const TID = "door-1";
const topics = new Topics();

interface World {
  gateway: RunningGateway;
  root: string;
  config: TargetConfig;
  target: Target;
}

async function world(): Promise<World> {
  const gateway = await startTestGateway();
  const root = tempDir("sparekey-verdicts-");
  const config = await pairTarget(adminContext(gateway), {
    tid: TID,
    out: join(root, `${TID}.json`),
    brokerUrl: gateway.url,
    stateDir: join(root, "state"),
    periodMs: 200,
  });
  const watch = await observeTarget(gateway, TID);
  const at = watch.mark();
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  await watch.event(at, (e) => e.type === "registry_applied", "the registry");
  return { gateway, root, config, target };
}

/** A logged-in phone of its own user, with a stored key for the target (limits from `grant`). */
async function phone(w: World, user: string, grant: { nbf?: number } = {}): Promise<string> {
  const admin = adminContext(w.gateway);
  const password = `${user}-password-0123`;
  const serial = `PHONE-${user.toUpperCase()}`;
  const slot = `${user}-key`;
  await addUser(admin, { user, password });
  await addTerminal(admin, { serial, user });
  await createSlot(admin, { slot, tids: [TID] });
  await addGrant(admin, { slot, user, mode: "stored", ...grant });
  await w.gateway.keyserver.publishNow();
  const dir = join(w.root, serial);
  await login({ dir, brokerUrl: w.gateway.url, serial, user, password, logger });
  await download({ dir, target: TID, logger });
  return dir;
}

async function link(dir: string) {
  const l = await connectProfile(readProfile(dir), topics, { logger, reconnectPeriod: 0 });
  onTestFinished(() => l.close());
  return l;
}

function runUse(dir: string, signal?: AbortSignal) {
  const out: string[] = [];
  const err: string[] = [];
  const exit = runTerminal(["use", "--target", TID, "--dir", dir], {
    stdout: { write: (t: string) => out.push(t), isTTY: false },
    stderr: { write: (t: string) => err.push(t) },
    env: {},
    logger,
    ...(signal ? { signal } : {}),
  });
  return { out, err, exit };
}

describe("verdicts over the real gateway", () => {
  it("reach only the terminal whose frame was refused: it sees why, another terminal may not subscribe", async () => {
    const w = await world();
    const alice = await link(await phone(w, "alice"));
    const bob = await link(await phone(w, "bob"));
    const mine = topics.verdicts("PHONE-ALICE");
    // SUBACK 128 [MQTT-3.9.3]: the broker refuses another terminal's verdicts, one by one or with +.
    const refused = { packet: { granted: [128] } };
    await expect(bob.client.subscribeAsync(mine, { qos: 0 })).rejects.toMatchObject(refused);
    const everyone = topics.filter("verdicts", { term: "+" });
    await expect(bob.client.subscribeAsync(everyone, { qos: 0 })).rejects.toMatchObject(refused);
    await alice.bus.subscribe(mine, 0);
    const verdict = nextJson(alice.client, mine);
    await alice.client.publishAsync(topics.frames(TID, "PHONE-ALICE"), "junk", { qos: 0 });
    expect(await verdict).toEqual({ v: 1, tid: TID, reason: "malformed", ts: expect.any(Number) });
  });

  it("`terminal use` exits 4 naming the reason after `admin revoke --slot`, and the key is not picked again", async () => {
    const w = await world();
    const dir = await phone(w, "alice");
    const watch = await observeTarget(w.gateway, TID);
    const at = watch.mark();
    const use = runUse(dir);
    await watch.state(at, (s) => s.state === "available" && s.term === "PHONE-ALICE", "alice's session");
    await revokeSlot(adminContext(w.gateway), { slot: "alice-key" });
    await w.gateway.keyserver.publishNow();
    expect(await use.exit).toBe(4);
    const reason = readWallet(dir, "PHONE-ALICE").credentials["alice-key"]?.revoked;
    expect(["old_generation", "slot_revoked"]).toContain(reason);
    expect(use.err).toEqual([
      expect.stringMatching(
        new RegExp(
          `^error ${reason}: target ${TID} refuses this key for good: .+ \\(${reason}\\); frames stopped\\n$`,
        ),
      ),
    ]);
    expect(use.out.at(-1)).toContain(`target says: `);
    expect(use.out.at(-1)).toContain(`(${reason}) ended=refused`);

    const again = runUse(dir);
    expect(await again.exit).toBe(1);
    expect(again.err.join("")).toContain(`[revoked: a target said ${reason}]`);
  });

  it("`terminal use` keeps sending through a transient refusal and shows it", async () => {
    const w = await world();
    const dir = await phone(w, "bob", { nbf: Math.floor(Date.now() / 1000) + 3600 });
    const stop = new AbortController();
    const use = runUse(dir, stop.signal);
    await waitFor(
      () => use.out.join("").includes("target says: the key is not valid yet (not_yet_valid)"),
      "the verdict on the status line",
    );
    const before = w.target.stats().refused.not_yet_valid ?? 0;
    await waitFor(
      () => (w.target.stats().refused.not_yet_valid ?? 0) >= before + 3,
      "three more frames refused not_yet_valid",
    );
    stop.abort();
    expect(await use.exit).toBe(0);
    expect(use.err).toEqual([]);
  });
});
