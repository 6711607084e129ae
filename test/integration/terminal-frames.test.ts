import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { decodeToken, signToken, verifySignature } from "../../common/jws.js";
import { generateSigningKey, type SigningKey } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { Challenge } from "../../schemas/messages.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { loadOrCreateKey, readWallet, updateWallet } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { startFobUse, startUse } from "../../terminal/use.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { retainKeyserverStatus } from "../helpers/retained.js";
import { nextJson, tempDir, waitFor } from "../helpers/wait.js";

const topics = new Topics();
const TID = "lock-1";
const issuer = generateSigningKey().key;
const FOB_SECRET = "fob-secret-0123456789abcdefghijklmnop";

function credential(holder: SigningKey, term: string, mode: "stored" | "fob"): string {
  return signToken(
    TokenType.credential,
    {
      v: 1,
      slot: "slot_a",
      gen: 2,
      tids: [TID],
      mode,
      holder: holder.publicKeyB64,
      term,
      nbf: 0,
      iat: 0,
      jti: "jti_0123456789abcdef",
    },
    issuer,
  );
}

function challenge(periodMs: number): Challenge {
  return {
    v: 1,
    tid: TID,
    nonce: randomBytes(16).toString("base64url"),
    period_ms: periodMs,
    ts: Date.now(),
  };
}

/** A broker, a logged-in terminal with a stored credential for lock-1, and a target played by the test. */
async function setup(): Promise<{
  url: string;
  dir: string;
  key: SigningKey;
  cred: string;
  target: MqttClient;
  frames: string[];
  senders: string[];
}> {
  const b = await startTestBroker(
    tableAuthenticator({
      "phone-1": { role: "terminal", password: "pw-phone" },
      "fob-1": { role: "terminal", password: FOB_SECRET },
      [TID]: { role: "target", password: "pw-lock" },
    }),
  );
  // Login and every later connection first check for a key server status.
  await retainKeyserverStatus(b, issuer.kid);
  const dir = tempDir();
  await login({
    dir,
    brokerUrl: b.url,
    serial: "phone-1",
    user: "alice",
    password: "pw-phone",
    logger: silentLogger(),
  });
  const { key } = loadOrCreateKey(dir, "phone-1");
  const cred = credential(key, "phone-1", "stored");
  updateWallet(dir, "phone-1", (w) => {
    w.credentials.slot_a = { token: cred, tids: [TID], gen: 2 };
  });
  const target = await connectMqtt({
    url: b.url,
    clientId: TID,
    username: TID,
    password: "pw-lock",
    reconnectPeriod: 0,
  });
  const frames: string[] = [];
  /** The {term} level of each frame's topic. */
  const senders: string[] = [];
  target.on("message", (topic, payload, packet) => {
    // Every sender's frames, each on its own topic level (the phone's, the fob's).
    const m = topics.match(topic);
    if (m?.name === "frames") {
      senders.push(m.params.term);
      expect(packet.retain).toBe(false);
      frames.push(payload.toString());
    }
  });
  await target.subscribeAsync(topics.filter("frames", { tid: TID, term: "+" }), { qos: 0 });
  return { url: b.url, dir, key, cred, target, frames, senders };
}

async function publishChallenge(target: MqttClient, c: Challenge): Promise<void> {
  await target.publishAsync(topics.challenge(TID), JSON.stringify(c), { qos: 0, retain: true });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

describe("terminal frame loop", () => {
  it("answers each new challenge with exactly one frame signed by the terminal key", async () => {
    const { dir, key, cred, target, frames } = await setup();
    const [c1, c2, c3] = [challenge(60_000), challenge(60_000), challenge(60_000)];
    await publishChallenge(target, c1);
    const handle = await startUse({ dir, tid: TID, logger: silentLogger() });
    try {
      await waitFor(() => frames.length === 1, "the first frame");
      await publishChallenge(target, c1);
      await publishChallenge(target, c2);
      await waitFor(
        () => frames.some((f) => decodeToken(f, TokenType.frame).payload.nonce === c2.nonce),
        "a frame for c2",
      );
      await publishChallenge(target, c3);
      await waitFor(() => frames.length >= 3, "a frame for c3");
    } finally {
      await handle.close();
    }
    const decoded = frames.map((f) => decodeToken(f, TokenType.frame));
    for (const d of decoded) expect(verifySignature(d, key.publicKey)).toBe(true);
    const seqs = decoded.map((d) => d.payload.seq);
    expect(decoded.map((d) => d.payload)).toEqual(
      [c1, c2, c3].map((c, i) => ({
        v: 1,
        tid: TID,
        slot: "slot_a",
        term: "phone-1",
        nonce: c.nonce,
        seq: seqs[i],
        cred,
      })),
    );
    expect(seqs[1]).toBeGreaterThan(seqs[0] ?? Number.POSITIVE_INFINITY);
    expect(seqs[2]).toBeGreaterThan(seqs[1] ?? Number.POSITIVE_INFINITY);
  });

  it("keeps a retained online status while in use and turns it offline when stopped", async () => {
    const { dir, target } = await setup();
    await publishChallenge(target, challenge(60_000));
    await target.subscribeAsync(topics.terminalStatus("phone-1"), { qos: 1 });
    const online = nextJson<{ state: string }>(
      target,
      topics.terminalStatus("phone-1"),
      (s) => s.state === "online",
    );
    const handle = await startUse({ dir, tid: TID, logger: silentLogger() });
    const first = await online;
    const offline = nextJson(target, topics.terminalStatus("phone-1"), (s) => s.state === "offline");
    await handle.close();
    expect(await offline).toEqual({ ...first, state: "offline" });
    expect(first).toEqual({ v: 1, state: "online", epoch: expect.any(Number) });
  });

  it("ends with out_of_reach about two periods after the challenges stop", async () => {
    const { dir, target, frames } = await setup();
    await publishChallenge(target, challenge(100));
    const handle = await startUse({ dir, tid: TID, logger: silentLogger() });
    try {
      await waitFor(() => frames.length === 1, "the frame for the only challenge");
      const lastChallengeAt = handle.sender.snapshot().lastChallengeAt ?? Number.NaN;
      expect(await within(handle.ended, 3000, "the loop to end")).toBe("out_of_reach");
      // Two periods of 100 ms; timers may fire a millisecond early, never a period early.
      expect(Date.now() - lastChallengeAt).toBeGreaterThanOrEqual(190);
      expect(frames).toHaveLength(1);
    } finally {
      await handle.close();
    }
  });

  it("`terminal use` exits 3 with a message when the target goes out of reach", async () => {
    const { dir, target } = await setup();
    await publishChallenge(target, challenge(100));
    const out: string[] = [];
    const err: string[] = [];
    const code = await runTerminal(["use", "--target", TID, "--dir", dir], {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
      logger: silentLogger(),
    });
    expect(code).toBe(3);
    expect(err).toEqual([`target ${TID} out of reach: no fresh challenge for 2 periods; frames stopped\n`]);
    expect(out.join("")).toContain(`target=${TID} slot=slot_a mode=stored`);
    expect(out.join("")).not.toMatch(/pw-phone|eyJ/);
  });

  it("`terminal use` exits 0 when interrupted", async () => {
    const { dir, target, frames } = await setup();
    await publishChallenge(target, challenge(60_000));
    const stop = new AbortController();
    const running = runTerminal(["use", "--target", TID, "--dir", dir], {
      stdout: { write: () => true },
      stderr: { write: () => true },
      env: {},
      logger: silentLogger(),
      signal: stop.signal,
    });
    await waitFor(() => frames.length === 1, "a frame");
    stop.abort();
    expect(await within(running, 3000, "use to return")).toBe(0);
  });

  it("as a fob, connects with its id and secret and signs frames with the fob's key", async () => {
    const { url, target, frames, senders } = await setup();
    const { key, seed } = generateSigningKey();
    const fobCred = credential(key, "fob-1", "fob");
    const fobFile = join(tempDir(), "fob.json");
    writeFileSync(
      fobFile,
      JSON.stringify({
        v: 1,
        term: "fob-1",
        secret: FOB_SECRET,
        seed: seed.toString("base64url"),
        credential: fobCred,
        broker_url: url,
        prefix: "sparekey/v1",
      }),
    );
    const c = challenge(60_000);
    await publishChallenge(target, c);
    const handle = await startFobUse({ fobFile, tid: TID, logger: silentLogger() });
    try {
      await waitFor(() => frames.length === 1, "the fob's frame");
    } finally {
      await handle.close();
    }
    const frame = decodeToken(frames[0] ?? "", TokenType.frame);
    expect(senders).toEqual(["fob-1"]);
    expect(verifySignature(frame, key.publicKey)).toBe(true);
    expect(frame.payload).toEqual({
      v: 1,
      tid: TID,
      slot: "slot_a",
      term: "fob-1",
      nonce: c.nonce,
      seq: expect.any(Number),
      cred: fobCred,
    });
  });

  it("deletes an ephemeral credential when the target goes out of reach", async () => {
    const { dir, target, frames } = await setup();
    await publishChallenge(target, challenge(100));
    const deleted: string[] = [];
    const handle = await startUse({
      dir,
      tid: TID,
      logger: silentLogger(),
      ephemeral: true,
      onDeleted: (slot) => deleted.push(slot),
    });
    try {
      expect(await within(handle.ended, 3000, "the loop to end")).toBe("out_of_reach");
    } finally {
      await handle.close();
    }
    expect(frames).toHaveLength(1);
    expect(deleted).toEqual(["slot_a"]);
    expect(readWallet(dir, "phone-1").credentials).toEqual({});
  });

  it("keeps an ephemeral credential when the loop is stopped", async () => {
    const { dir, cred, target, frames } = await setup();
    await publishChallenge(target, challenge(60_000));
    const handle = await startUse({ dir, tid: TID, logger: silentLogger(), ephemeral: true });
    await waitFor(() => frames.length === 1, "a frame");
    await handle.close();
    expect(await handle.ended).toBe("stopped");
    expect(readWallet(dir, "phone-1").credentials).toEqual({ slot_a: { token: cred, tids: [TID], gen: 2 } });
  });

  it("`terminal use --ephemeral` says the credential was deleted when the target went out of reach", async () => {
    const { dir, target } = await setup();
    await publishChallenge(target, challenge(100));
    const err: string[] = [];
    const code = await runTerminal(["use", "--target", TID, "--ephemeral", "--dir", dir], {
      stdout: { write: () => true },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
      logger: silentLogger(),
    });
    expect(code).toBe(3);
    expect(err).toEqual([
      `target ${TID} out of reach: no fresh challenge for 2 periods; frames stopped\n`,
      "ephemeral key: credential for slot slot_a deleted\n",
    ]);
    expect(readWallet(dir, "phone-1").credentials).toEqual({});
  });

  it("`terminal use` exits 4 when the session that spent the last use ends, showing uses_left", async () => {
    const { dir, target, frames } = await setup();
    await publishChallenge(target, challenge(60_000));
    const out: string[] = [];
    const err: string[] = [];
    const running = runTerminal(["use", "--target", TID, "--dir", dir], {
      stdout: { write: (t: string) => out.push(t), isTTY: false },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
      logger: silentLogger(),
    });
    await waitFor(() => frames.length === 1, "a frame");
    const state = { v: 1, tid: TID, slot: "slot_a", term: "phone-1", mode: "stored" };
    const publishState = (s: Record<string, unknown>) =>
      target.publishAsync(topics.state(TID), JSON.stringify({ ...state, ...s }), { qos: 1, retain: true });
    await publishState({ state: "available", since: Date.now(), reason: "frame_accepted", uses_left: 0 });
    await waitFor(() => out.join("").includes("uses_left=0"), "uses_left on the status line");
    await publishState({ state: "unavailable", since: Date.now(), reason: "frame_timeout" });
    expect(await within(running, 3000, "use to return")).toBe(4);
    expect(err).toEqual([`target ${TID}: the key's last use is spent (uses_left 0); frames stopped\n`]);
    expect(out.at(-1)).toContain("ended=uses_exhausted");
  });
});
