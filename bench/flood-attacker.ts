import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { type IClientOptions, MqttClient } from "mqtt";
import { decodeToken, signToken } from "../common/jws.js";
import { generateSigningKey, type SigningKey } from "../common/keys.js";
import { silentLogger } from "../common/log.js";
import { Challenge } from "../schemas/messages.js";
import { type RpcEnvelope, RpcReply } from "../schemas/rpc.js";
import { TokenType } from "../schemas/tokens.js";
import { Topics } from "../schemas/topics.js";
import { parseJson, validator } from "../schemas/validate.js";
import { download } from "../terminal/download.js";
import { readWallet } from "../terminal/files.js";
import { login } from "../terminal/login.js";
import { selectCredential } from "../terminal/use.js";
import {
  type AttackCounts,
  type Attacker,
  type AttackerMessage,
  AttackGo,
  AttackJob,
  addCounts,
  zeroCounts,
} from "./flood-ipc.js";

/**
 * One attacker process of `npm run bench -- flood`: it runs the attackers it is given, each as its own
 * MQTT connection from its own loopback source address, as fast as the broker lets it, until the time
 * it is told; then it reports its counts and exits. It shares no event loop with the measurer.
 */

/** Requests one attacker keeps on the wire at once: enough to saturate, bounded so memory is. */
const WINDOW = 32;
const CONNECT_TIMEOUT_MS = 5000;

type Outcome =
  | { kind: "connected" }
  | { kind: "refused"; code: unknown }
  | { kind: "closed" }
  | { kind: "timeout" };

function connectFrom(
  url: string,
  a: { clientId: string; username?: string | undefined; password?: string | undefined },
  address: string | undefined,
): MqttClient {
  const u = new URL(url);
  const opts: IClientOptions = {
    clientId: a.clientId,
    protocolVersion: 4,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
  };
  if (a.username !== undefined) opts.username = a.username;
  if (a.password !== undefined) opts.password = a.password;
  // MQTT.js's own TCP builder cannot pick a source address; a builder of ours can.
  const client = new MqttClient(() => {
    const socket = createConnection({
      host: u.hostname,
      port: Number(u.port),
      ...(address ? { localAddress: address } : {}),
    });
    socket.setNoDelay(true);
    return socket;
  }, opts);
  // An 'error' without a listener would throw; refusals are read from `settle`.
  client.on("error", () => undefined);
  return client;
}

/** The first of CONNACK, refusal, close or the deadline. */
function settle(client: MqttClient): Promise<Outcome> {
  return new Promise((resolve) => {
    const done = (o: Outcome) => {
      clearTimeout(timer);
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("close", onClose);
      resolve(o);
    };
    const onConnect = () => done({ kind: "connected" });
    const onError = (err: Error) => done({ kind: "refused", code: (err as { code?: unknown }).code });
    const onClose = () => done({ kind: "closed" });
    const timer = setTimeout(() => done({ kind: "timeout" }), CONNECT_TIMEOUT_MS + 1000);
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("close", onClose);
  });
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) resolve();
    else client.once("close", () => resolve());
  });
}

function until(deadline: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())));
}

function randomId(): string {
  return randomBytes(9).toString("base64url");
}

/**
 * Keep up to WINDOW publishes in flight on a connected client until the deadline or the connection
 * ends; `next` builds one request. Returns whether the broker closed the connection.
 */
async function pump(
  client: MqttClient,
  deadline: number,
  counts: AttackCounts,
  next: () => { topic: string; payload: string | Buffer; qos: 0 | 1 },
): Promise<boolean> {
  const gone = closed(client);
  const stop = Promise.race([gone, until(deadline)]);
  const inflight = new Set<Promise<void>>();
  while (Date.now() < deadline && client.connected) {
    const m = next();
    const p: Promise<void> = client.publishAsync(m.topic, m.payload, { qos: m.qos }).then(
      () => undefined,
      () => undefined,
    );
    const tracked = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
    counts.sent++;
    // QoS 0 resolves once written to the socket, QoS 1 at PUBACK: a broker that slows us slows this.
    if (inflight.size >= WINDOW) await Promise.race([...inflight, stop]);
  }
  return !client.connected && Date.now() < deadline;
}

/** Guess passwords, one CONNECT after another; a third name the victim's serial and user, a third its user. */
async function badLogins(job: AttackJob, a: Attacker, i: number, deadline: number, counts: AttackCounts) {
  while (Date.now() < deadline) {
    const naming = i % 3;
    const client = connectFrom(
      job.url,
      {
        clientId: naming === 0 ? job.victim.serial : `guess-${randomId()}`,
        username: naming === 2 ? `user-${randomId()}` : job.victim.user,
        password: randomBytes(12).toString("base64url"),
      },
      a.address,
    );
    counts.sent++;
    const o = await settle(client);
    client.end(true);
    if (o.kind === "refused") {
      counts.answered++;
      // 3.1.1 code 3 (server unavailable): what a login limit answers.
      if (o.code === 3) counts.limited++;
    } else if (o.kind === "closed") counts.dropped++;
    else counts.errors++; // accepted with a wrong password, or no answer at all
  }
}

/** Log in as oneself and connect again whenever the broker drops the line, until the deadline. */
async function loggedIn(
  job: AttackJob,
  a: Attacker,
  deadline: number,
  counts: AttackCounts,
  session: (client: MqttClient, serial: string) => Promise<void>,
): Promise<void> {
  const serial = need(a.serial, "serial");
  while (Date.now() < deadline) {
    const client = connectFrom(
      job.url,
      { clientId: serial, username: a.user, password: a.password },
      a.address,
    );
    const o = await settle(client);
    if (o.kind !== "connected") {
      counts.dropped++;
      client.end(true);
      // The broker said no (a limit) or nothing: try again soon, not in a tight loop.
      await until(Math.min(deadline, Date.now() + 100));
      continue;
    }
    try {
      await session(client, serial);
    } catch {
      counts.errors++;
    }
    if (!client.connected && Date.now() < deadline) counts.dropped++;
    client.end(true);
  }
}

/** RPC `download` requests (each issues and audits a credential), as fast as the broker takes them. */
function rpcFlood(job: AttackJob, a: Attacker, deadline: number, counts: AttackCounts): Promise<void> {
  const topics = new Topics(job.prefix);
  const replies = validator(RpcReply, "rpc reply");
  const publicKey = generateSigningKey().key.publicKeyB64;
  return loggedIn(job, a, deadline, counts, async (client, serial) => {
    const replyTopic = topics.rpcReply(serial);
    client.on("message", (topic, payload) => {
      if (topic !== replyTopic) return;
      const reply = parseJson(payload.toString("utf8"));
      if (!replies.is(reply)) return;
      counts.answered++;
      if (reply.error?.code === "rate_limited") counts.limited++;
    });
    await client.subscribeAsync(replyTopic, { qos: 1 });
    await pump(client, deadline, counts, () => {
      const request: RpcEnvelope & { public_key: string; tid: string } = {
        v: 1,
        id: randomId(),
        public_key: publicKey,
        tid: job.tid,
      };
      const m = topics.message("rpcRequest", { term: serial, op: "download" }, request);
      return { topic: m.topic, payload: m.payload, qos: m.qos };
    });
  });
}

interface FrameKit {
  token: string;
  slot: string;
  issuerKid: string;
}

/** Log in and download a real credential of the attacker's own, before the clock starts. */
async function prepareFrames(job: AttackJob, a: Attacker): Promise<FrameKit> {
  const dir = need(a.dir, "dir");
  const serial = need(a.serial, "serial");
  const logger = silentLogger();
  await login({
    dir,
    brokerUrl: job.url,
    serial,
    user: need(a.user, "user"),
    password: need(a.password, "password"),
    prefix: job.prefix,
    logger,
  });
  await download({ dir, target: job.tid, logger });
  const cred = selectCredential(readWallet(dir, serial), job.tid);
  return {
    token: cred.token,
    slot: cred.slot,
    issuerKid: decodeToken(cred.token, TokenType.credential).header.kid,
  };
}

/**
 * Three kinds of frame in turn, on the target's frames topic: junk bytes (refused at the envelope); a
 * frame claiming the victim's terminal and slot with a credential "signed" under the real issuer's kid
 * (one issuer verify at the target, then refused); the attacker's own real credential in a frame signed
 * with the wrong key (one holder verify, then refused). The last two are the most a bad frame can cost.
 */
function badFrames(
  job: AttackJob,
  a: Attacker,
  kit: FrameKit,
  deadline: number,
  counts: AttackCounts,
): Promise<void> {
  const topics = new Topics(job.prefix);
  const challenges = validator(Challenge, "challenge");
  const forger: SigningKey = generateSigningKey().key;
  const now = Math.floor(Date.now() / 1000);
  const forgedCred = signToken(
    TokenType.credential,
    {
      v: 1,
      slot: job.victim.slot,
      gen: 1,
      tids: [job.tid],
      mode: "stored",
      holder: forger.publicKeyB64,
      term: job.victim.term,
      nbf: now - 10,
      iat: now - 10,
      jti: randomId(),
    },
    { ...forger, kid: kit.issuerKid },
  );
  const serial = need(a.serial, "serial");
  // The broker lets a terminal publish frames only under its own id, so junk arrives under the attacker's.
  const framesTopic = topics.frames(job.tid, serial);
  let n = 0;
  // Above any seq the victim has used (milliseconds), so the seq check passes and the signature is paid.
  const seqBase = Date.now() * 1000;
  return loggedIn(job, a, deadline, counts, async (client) => {
    let nonce: string | undefined;
    const challengeTopic = topics.challenge(job.tid);
    client.on("message", (topic, payload) => {
      if (topic !== challengeTopic) return;
      const c = parseJson(payload.toString("utf8"));
      if (challenges.is(c)) nonce = c.nonce;
    });
    await client.subscribeAsync(challengeTopic, { qos: 0 });
    while (nonce === undefined && client.connected && Date.now() < deadline) await until(Date.now() + 20);
    await pump(client, deadline, counts, () => {
      n++;
      const seq = seqBase + n;
      let payload: string | Buffer;
      if (n % 3 === 0) payload = randomBytes(40 + (n % 200));
      else if (n % 3 === 1)
        payload = signToken(
          TokenType.frame,
          {
            v: 1,
            tid: job.tid,
            slot: job.victim.slot,
            term: job.victim.term,
            nonce: nonce ?? "",
            seq,
            cred: forgedCred,
          },
          forger,
        );
      else
        payload = signToken(
          TokenType.frame,
          { v: 1, tid: job.tid, slot: kit.slot, term: serial, nonce: nonce ?? "", seq, cred: kit.token },
          forger,
        );
      return { topic: framesTopic, payload, qos: 0 };
    });
  });
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`attacker without ${what}`);
  return value;
}

function send(message: AttackerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(message, () => resolve());
  });
}

function nextMessage(): Promise<unknown> {
  return new Promise((resolve) => process.once("message", resolve));
}

async function main(): Promise<void> {
  // The benchmark owns this process: without it there is nothing to report to.
  process.on("disconnect", () => process.exit(1));
  const job = validator(AttackJob, "attack job").parse(await nextMessage());
  const kits =
    job.kind === "bad-frames" ? await Promise.all(job.attackers.map((a) => prepareFrames(job, a))) : [];
  await send({ type: "ready" });
  const go = validator(AttackGo, "attack go").parse(await nextMessage());
  const deadline = Date.now() + go.ms;
  const perAttacker = job.attackers.map(() => zeroCounts());
  await Promise.all(
    job.attackers.map((a, i) => {
      const counts = perAttacker[i] ?? zeroCounts();
      if (job.kind === "bad-logins") return badLogins(job, a, i, deadline, counts);
      if (job.kind === "rpc-flood") return rpcFlood(job, a, deadline, counts);
      return badFrames(job, a, need(kits[i], "credential"), deadline, counts);
    }),
  );
  await send({ type: "done", counts: perAttacker.reduce(addCounts, zeroCounts()) });
  // Sent (the callback ran): nothing of this process is needed any more, whatever sockets linger.
  process.exit(0);
}

main().catch(async (err: unknown) => {
  await send({ type: "failed", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
