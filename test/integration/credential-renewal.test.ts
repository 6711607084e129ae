import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { decodeToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import { addGrant, addTerminal, addUser, revokeGrant } from "../../keyserver/admin/accounts.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import { TokenType } from "../../schemas/tokens.js";
import { download } from "../../terminal/download.js";
import { readWallet } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { renewDue } from "../../terminal/renew.js";
import { openSession } from "../../terminal/session.js";
import { startUse } from "../../terminal/use.js";
import { adminContext, startTestGateway } from "../helpers/gateway.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const TID = "door-1";
const SLOT = "alice-key";
const LIFETIME_S = 3000;

/** Alice's phone with a stored key on door-1 that expires LIFETIME_S after it was downloaded. */
async function aliceWithKey() {
  const gateway = await startTestGateway();
  const admin = adminContext(gateway);
  const root = tempDir("sparekey-renew-");
  await pairTarget(admin, {
    tid: TID,
    out: join(root, "t.json"),
    brokerUrl: gateway.url,
    stateDir: join(root, "s"),
  });
  await addUser(admin, { user: "alice", password: "alice-password-0123" });
  await addTerminal(admin, { serial: "PHONE-ALICE", user: "alice" });
  await createSlot(admin, { slot: SLOT, tids: [TID] });
  const exp = Math.floor(Date.now() / 1000) + LIFETIME_S;
  await addGrant(admin, { slot: SLOT, user: "alice", mode: "stored", exp });
  const dir = join(root, "phone");
  await login({
    dir,
    brokerUrl: gateway.url,
    serial: "PHONE-ALICE",
    user: "alice",
    password: "alice-password-0123",
    logger,
  });
  await download({ dir, target: TID, logger });
  const entry = () => {
    const e = readWallet(dir, "PHONE-ALICE").credentials[SLOT];
    if (!e) throw new Error("no credential in the wallet");
    return e;
  };
  const first = entry();
  const { nbf } = decodeToken(first.token, TokenType.credential).payload;
  /** A clock `share` of the way through the first credential's lifetime (Unix ms). */
  const at = (share: number) => () => (nbf + share * LIFETIME_S) * 1000;
  return { gateway, admin, dir, entry, first, at };
}

describe("credential renewal", () => {
  it("renews a stored credential with less than a third of its lifetime left, and only then", async () => {
    const { dir, entry, first, at } = await aliceWithKey();
    const session = await openSession({ dir, logger });
    onTestFinished(() => session.close());
    expect(await renewDue(session, { logger, now: at(0.5) })).toEqual([{ slot: SLOT, outcome: "not_due" }]);
    expect(entry()).toEqual(first);
    const renewed = await renewDue(session, { logger, now: at(0.7) });
    expect(renewed).toEqual([
      // This phone holds the slot's current generation: a renewal keeps it (its own session stays open).
      { slot: SLOT, outcome: "renewed", gen: first.gen, exp: expect.any(Number) },
    ]);
    expect(entry()).toMatchObject({ gen: first.gen, tids: [TID] });
    expect(entry().token).not.toBe(first.token);
    expect(entry().token).not.toBe(first.token);
    // A configured fraction: at half the lifetime, 0.6 says renew.
    expect(await renewDue(session, { logger, now: at(0.5), fraction: 0.6 })).toMatchObject([
      { outcome: "renewed" },
    ]);
  });

  it("a failed renewal keeps the old credential", async () => {
    const { admin, dir, entry, first, at } = await aliceWithKey();
    await revokeGrant(admin, { slot: SLOT, user: "alice", mode: "stored" });
    const session = await openSession({ dir, logger });
    onTestFinished(() => session.close());
    const outcome = await renewDue(session, { logger, now: at(0.9) });
    expect(outcome).toEqual([{ slot: SLOT, outcome: "failed", code: "grant_revoked" }]);
    expect(entry()).toEqual(first);
  });

  it("terminal use renews the credential it uses while online when it is due", async () => {
    const { dir, entry, first, at } = await aliceWithKey();
    const use = await startUse({ dir, tid: TID, logger, now: at(0.8) });
    onTestFinished(() => use.close());
    await waitFor(() => entry().token !== first.token, "the renewed credential in the wallet");
    expect(entry().gen).toBe(first.gen);
  });

  it("terminal renew says which keys it renewed", async () => {
    const { dir } = await aliceWithKey();
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: { write: (t: string) => out.push(t) },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
      logger,
    };
    expect(await runTerminal(["renew", "--dir", dir], io)).toBe(0);
    expect({ out, err }).toEqual({ out: [`slot ${SLOT}: not due\n`], err: [] });
    expect(await runTerminal(["renew", "--dir", dir, "--percent", "0"], io)).toBe(2);
  });
});
