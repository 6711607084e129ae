import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeToken, signToken, verifySignature } from "../../common/jws.js";
import { generateSigningKey, type SigningKey } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { Challenge } from "../../schemas/messages.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { loadOrCreateKey, updateWallet } from "../../terminal/files.js";
import type { FrameSenderSnapshot } from "../../terminal/frame-sender.js";
import { login } from "../../terminal/login.js";
import { formatStatus } from "../../terminal/status-line.js";
import { startRelayUse, startUse, type UseHandle } from "../../terminal/use.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const topics = new Topics();
const TID = "lock-1";
const TERM = "phone-1";
const issuer = generateSigningKey().key;

function challenge(): Challenge {
  return { v: 1, tid: TID, nonce: randomBytes(16).toString("base64url"), period_ms: 60_000, ts: Date.now() };
}

interface FakeKeyserver {
  client: MqttClient;
  /** Relay requests as received, with the caller taken from the topic. */
  requests: Array<{ term: string; body: Record<string, unknown> }>;
  /** Frames it signed, in order. */
  signed: string[];
  mode: "sign" | "error";
  status(state: "online" | "offline", epoch: number): Promise<void>;
}

/** A plain MQTT client with the key server's role that signs relay frames with a test issuer. */
async function fakeKeyserver(url: string): Promise<FakeKeyserver> {
  const client = await connectMqtt({
    url,
    clientId: "keyserver",
    username: "keyserver",
    password: "pw-ks",
    reconnectPeriod: 0,
  });
  let seq = 1000;
  const ks: FakeKeyserver = {
    client,
    requests: [],
    signed: [],
    mode: "sign",
    async status(state, epoch) {
      await client.publishAsync(
        topics.keyserverStatus(),
        JSON.stringify({ v: 1, state, epoch, kid: issuer.kid }),
        {
          qos: 1,
          retain: true,
        },
      );
    },
  };
  client.on("message", (topic, payload) => {
    const levels = topics.relative(topic) ?? [];
    const term = levels[2] ?? "";
    const body = JSON.parse(payload.toString()) as { id: string; tid: string; nonce: string };
    ks.requests.push({ term, body });
    let reply: Record<string, unknown>;
    if (ks.mode === "error") {
      reply = { v: 1, id: body.id, ok: false, error: { code: "no_grant", message: "no relay grant" } };
    } else {
      seq += 1;
      const frame = signToken(
        TokenType.relay,
        { v: 1, tid: body.tid, slot: "slot_r", gen: 3, term, epoch: 1, nonce: body.nonce, seq, iat: 1 },
        issuer,
      );
      ks.signed.push(frame);
      reply = { v: 1, id: body.id, ok: true, result: { frame, slot: "slot_r", gen: 3, seq } };
    }
    void client.publishAsync(topics.rpcReply(term), JSON.stringify(reply), { qos: 1 });
  });
  await client.subscribeAsync(`${topics.prefix}/keyserver/rpc/+/relay`, { qos: 1 });
  return ks;
}

async function setup() {
  const b = await startTestBroker(
    tableAuthenticator({
      [TERM]: { role: "terminal", password: "pw-phone" },
      [TID]: { role: "target", password: "pw-lock" },
      keyserver: { role: "keyserver", password: "pw-ks" },
    }),
  );
  const dir = tempDir();
  // Login and every later connection check the key server's status first.
  const ks = await fakeKeyserver(b.url);
  await ks.status("online", 0);
  await login({
    dir,
    brokerUrl: b.url,
    serial: TERM,
    user: "alice",
    password: "pw-phone",
    logger: silentLogger(),
  });
  const target = await connectMqtt({
    url: b.url,
    clientId: TID,
    username: TID,
    password: "pw-lock",
    reconnectPeriod: 0,
  });
  const frames: string[] = [];
  target.on("message", (topic, payload) => {
    if (topic === topics.frames(TID, TERM)) frames.push(payload.toString());
  });
  await target.subscribeAsync(topics.filter("frames", { tid: TID, term: "+" }), { qos: 0 });
  const snapshots: FrameSenderSnapshot[] = [];
  const publish = (c: Challenge) =>
    target.publishAsync(topics.challenge(TID), JSON.stringify(c), { qos: 0, retain: true });
  return { url: b.url, dir, ks, target, frames, snapshots, publish };
}

function nonces(frames: string[]): string[] {
  return frames.map((f) => decodeToken(f, TokenType.relay).payload.nonce);
}

async function relay(dir: string, snapshots: FrameSenderSnapshot[]): Promise<UseHandle> {
  const handle = await startRelayUse({
    dir,
    tid: TID,
    logger: silentLogger(),
    onChange: (s) => snapshots.push(s),
  });
  return handle;
}

describe("terminal relay mode", () => {
  it("publishes, as is, one key-server-signed frame per fresh challenge", async () => {
    const { dir, ks, frames, snapshots, publish } = await setup();
    const [c1, c2] = [challenge(), challenge()];
    await publish(c1);
    const handle = await relay(dir, snapshots);
    try {
      await waitFor(() => frames.length === 1, "the first relayed frame");
      await publish(c1);
      await publish(c2);
      await waitFor(() => frames.length === 2, "the frame for c2");
    } finally {
      await handle.close();
    }
    expect(frames).toEqual(ks.signed);
    expect(ks.requests).toEqual(
      [c1, c2].map((c) => ({
        term: TERM,
        body: { v: 1, id: expect.any(String), tid: TID, nonce: c.nonce },
      })),
    );
    const decoded = frames.map((f) => decodeToken(f, TokenType.relay));
    for (const d of decoded) expect(verifySignature(d, issuer.publicKey)).toBe(true);
    expect(nonces(frames)).toEqual([c1.nonce, c2.nonce]);
    expect(snapshots.at(-1)).toMatchObject({
      mode: "relay",
      slot: "slot_r",
      framesSent: 2,
      ended: "stopped",
    });
  });

  it("sends no frame for a challenge the key server refuses to sign", async () => {
    const { dir, ks, frames, snapshots, publish } = await setup();
    ks.mode = "error";
    const handle = await relay(dir, snapshots);
    try {
      await publish(challenge());
      await waitFor(() => ks.requests.length === 1, "the refused request");
      ks.mode = "sign";
      const c2 = challenge();
      await publish(c2);
      await waitFor(() => frames.length >= 1, "a frame for the next challenge");
      expect(nonces(frames)).toEqual([c2.nonce]);
    } finally {
      await handle.close();
    }
  });

  it("stops relaying while the key server is offline, ignores an older epoch, resumes on a later challenge", async () => {
    const { dir, ks, frames, snapshots, publish } = await setup();
    await ks.status("online", 5);
    const handle = await relay(dir, snapshots);
    const line = () => handle.sender.snapshot().line;
    try {
      const c1 = challenge();
      await publish(c1);
      await waitFor(() => frames.length === 1, "the frame for c1");
      await ks.status("offline", 5);
      await waitFor(() => !line().up, "the line to go down");
      expect(line()).toEqual({ up: false, connected: true, why: "key server offline" });
      const c2 = challenge();
      const seen = snapshots.length;
      await publish(c2);
      await waitFor(() => snapshots.slice(seen).some((s) => s.lastChallengeAt !== undefined), "c2 to arrive");
      await ks.status("online", 6);
      await waitFor(() => line().up, "the line to come back");
      await ks.status("offline", 5);
      const c3 = challenge();
      await publish(c3);
      await waitFor(() => frames.length === 2, "the frame for c3");
      expect(line().up).toBe(true);
      expect(nonces(frames)).toEqual([c1.nonce, c3.nonce]);
      expect(ks.requests.map((r) => r.body.nonce)).toEqual([c1.nonce, c3.nonce]);
      expect(snapshots.map((s) => formatStatus(s, 0))).toContainEqual(
        expect.stringContaining("line down: key server offline"),
      );
    } finally {
      await handle.close();
    }
  });

  it("stops frames when its own socket is destroyed and resumes after reconnecting only with a fresh frame", async () => {
    const { dir, ks, frames, snapshots, publish } = await setup();
    const handle = await relay(dir, snapshots);
    try {
      const c1 = challenge();
      await publish(c1);
      await waitFor(() => frames.length === 1, "the frame for c1");
      // The resubscription redelivers the retained c1; c2 comes after it (else c1 would be news after c2).
      let redelivered = 0;
      handle.client.on("message", (topic, _payload, packet) => {
        if (topic === topics.challenge(TID) && packet.retain) redelivered += 1;
      });
      handle.client.stream.destroy();
      await waitFor(() => !handle.sender.snapshot().line.connected, "the line to go down");
      expect(handle.sender.snapshot().line.why).toMatch(/^connection lost/);
      await waitFor(() => handle.sender.snapshot().line.up, "the reconnect", 5000);
      await waitFor(() => redelivered === 1, "the retained c1 on resubscribe");
      const c2 = challenge();
      await publish(c2);
      await waitFor(() => frames.length === 2, "the frame for c2");
      // The retained c1 redelivered on resubscribe was not answered again.
      expect(nonces(frames)).toEqual([c1.nonce, c2.nonce]);
      expect(ks.requests.map((r) => r.body.nonce)).toEqual([c1.nonce, c2.nonce]);
      expect(snapshots.map((s) => formatStatus(s, 0))).toContainEqual(
        expect.stringContaining("line down: connection lost"),
      );
      expect(handle.sender.snapshot().ended).toBeUndefined();
    } finally {
      await handle.close();
    }
  });

  it("keeps a stored-key loop sending while the key server is offline", async () => {
    const { dir, ks, frames, snapshots, publish } = await setup();
    const { key } = loadOrCreateKey(dir, TERM);
    storeCredential(dir, key);
    await ks.status("offline", 9);
    const handle = await startUse({
      dir,
      tid: TID,
      logger: silentLogger(),
      onChange: (s) => snapshots.push(s),
    });
    try {
      const [c1, c2] = [challenge(), challenge()];
      await publish(c1);
      await waitFor(() => frames.length === 1, "the frame for c1");
      await ks.status("offline", 10);
      await publish(c2);
      await waitFor(() => frames.length === 2, "the frame for c2");
      expect(frames.map((f) => decodeToken(f, TokenType.frame).payload.nonce)).toEqual([c1.nonce, c2.nonce]);
      expect(handle.sender.snapshot().line).toEqual({ up: true, connected: true, why: undefined });
    } finally {
      await handle.close();
    }
  });
});

function storeCredential(dir: string, key: SigningKey): void {
  const cred = signToken(
    TokenType.credential,
    {
      v: 1,
      slot: "slot_a",
      gen: 2,
      tids: [TID],
      mode: "stored",
      holder: key.publicKeyB64,
      term: TERM,
      nbf: 0,
      iat: 0,
      jti: "jti_0123456789abcdef",
    },
    issuer,
  );
  updateWallet(dir, TERM, (w) => {
    w.credentials.slot_a = { token: cred, tids: [TID], gen: 2 };
  });
}
