import { onTestFinished } from "vitest";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { TargetWatcher } from "../../common/target-watcher.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { TargetEvent, TargetState } from "../../schemas/messages.js";
import type { CredentialPayload, FramePayload, RelayPayload, UnlockPayload } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRegistry,
  mintRelay,
  mintUnlock,
  type Overrides,
  registryEntry,
  type TestHolder,
} from "../helpers/issuer.js";
import { tempDir, waitFor } from "../helpers/wait.js";

export const TID = "lock-1";
const SECRET = "target-secret-0123456789abcdef-0123";

/**
 * A real aedes broker, a Target, a key server client that publishes the registry and records every
 * challenge, state and event message, and a terminal client that sends frames.
 */
export async function targetHarness(
  options: {
    periodMs?: number;
    actuator?: string[];
    timeZone?: string;
    lockout?: Pick<TargetConfig, "lockout_refusals" | "lockout_window_s" | "lockout_s">;
  } = {},
) {
  const issuer = makeIssuer();
  const holder = makeHolder();
  const broker = await startTestBroker(
    tableAuthenticator({
      [TID]: { role: "target", password: SECRET },
      "term-1": { role: "terminal", password: "term-password" },
      // More terminals for `send(frame, as)`: each publishes frames only under its own id.
      "term-2": { role: "terminal", password: "term-password" },
      "term-r": { role: "terminal", password: "term-password" },
      ks: { role: "keyserver", password: "ks-password" },
    }),
  );
  const topics = new Topics();
  const config: TargetConfig = {
    v: 1,
    tid: TID,
    broker_url: broker.url,
    secret: SECRET,
    prefix: topics.prefix,
    issuer_keys: [issuer.publicKey],
    period_ms: options.periodMs ?? 150,
    timeout_periods: 2,
    state_dir: tempDir(),
    keepalive_s: 5,
    ...(options.actuator ? { actuator: options.actuator } : {}),
    ...(options.timeZone ? { time_zone: options.timeZone } : {}),
    ...options.lockout,
  };

  const ks = await connectMqtt({ url: broker.url, clientId: "ks", username: "ks", password: "ks-password" });
  // A target starts only on a broker with its key server's status (the key server check).
  await ks.publishAsync(
    topics.keyserverStatus(),
    JSON.stringify({ v: 1, state: "online", epoch: 0, kid: issuer.key.kid }),
    {
      qos: 1,
      retain: true,
    },
  );
  const term = await connectMqtt({
    url: broker.url,
    clientId: "term-1",
    username: "term-1",
    password: "term-password",
  });
  // The key server's client watches what a dashboard would (the ACL lets a terminal see none of it),
  // every payload validated: a target publishing a malformed state fails the test's next wait.
  const watcher = new TargetWatcher({
    client: ks,
    tid: TID,
    prefix: topics.prefix,
    kinds: ["state", "event", "challenge"],
  });
  await watcher.start();
  const { events, states } = watcher;

  let target: Target | undefined;
  let seq = 0;
  /** Connections of the other terminals, opened once on their first `send` (concurrent sends share it). */
  const others = new Map<string, Promise<MqttClient>>();
  const terminal = (id: string): Promise<MqttClient> => {
    if (id === "term-1") return Promise.resolve(term);
    let client = others.get(id);
    if (!client) {
      client = connectMqtt({ url: broker.url, clientId: id, username: id, password: "term-password" });
      others.set(id, client);
    }
    return client;
  };
  onTestFinished(async () => {
    await target?.stop();
    for (const client of others.values()) await (await client).endAsync();
    await term.endAsync();
    await ks.endAsync();
  });

  const inBroker = (topic: string, payload: string, qos: 0 | 1) =>
    new Promise<void>((resolve, reject) =>
      broker.aedes.publish(
        { cmd: "publish", topic, payload: Buffer.from(payload), qos, retain: true, dup: false },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  const h = {
    issuer,
    holder,
    broker,
    topics,
    config,
    ks,
    term,
    watcher,
    events,
    states,
    get target(): Target {
      if (!target) throw new Error("target not started");
      return target;
    },
    async publishRegistry(version: number, slots = [registryEntry("slot-1")]): Promise<void> {
      await ks.publishAsync(topics.registry(TID), mintRegistry(issuer, TID, { version, slots }), {
        qos: 1,
        retain: true,
      });
    },
    /** Start (or start again) a Target on the same config and state dir. */
    async startTarget(): Promise<Target> {
      const mark = watcher.mark();
      target = new Target({ config, logger: silentLogger() });
      await target.start();
      await watcher.state((s) => s.reason === "started", { from: mark, what: "the target's started state" });
      // The key server's retained status is the first status the target takes: counts start after it.
      const started = target;
      await waitFor(() => started.stats().status_accepted >= 1, "the key server's retained status");
      return target;
    },
    async stopTarget(): Promise<void> {
      await target?.stop();
      target = undefined;
    },
    /** The nonce of the latest challenge the terminal saw. */
    nonce(): string {
      const challenge = watcher.challenges.at(-1);
      if (!challenge) throw new Error("no challenge seen yet");
      return challenge.nonce;
    },
    nextSeq(): number {
      seq += 1;
      return seq;
    },
    credential(overrides: Overrides<CredentialPayload> = {}): string {
      return mintCredential(issuer, { holder: holder.publicKeyB64, tids: [TID], ...overrides });
    },
    /** A good frame for the current nonce and the next seq, with any member changed. */
    frame(overrides: Partial<FramePayload> = {}, signer: TestHolder = holder): string {
      return mintFrame(signer, {
        v: 1,
        tid: TID,
        slot: "slot-1",
        term: "term-1",
        nonce: h.nonce(),
        seq: h.nextSeq(),
        cred: h.credential(),
        ...overrides,
      });
    },
    /** An issuer-signed relay frame for the current nonce and the next seq, with any member changed. */
    relay(overrides: Overrides<RelayPayload> = {}): string {
      return mintRelay(issuer, { tid: TID, nonce: h.nonce(), seq: h.nextSeq(), ...overrides });
    },
    /** The key server publishes an unlock command bound to the current nonce. */
    async unlock(overrides: Overrides<UnlockPayload> = {}): Promise<void> {
      const token = mintUnlock(issuer, { tid: TID, nonce: h.nonce(), ...overrides });
      await ks.publishAsync(topics.unlock(TID), token, { qos: 1 });
    },
    /** A retained link status: the terminal's own (`term-1`) or the key server's. */
    async status(who: "term-1" | "keyserver", state: "online" | "offline", epoch: number): Promise<void> {
      if (who === "keyserver") {
        const payload = JSON.stringify({ v: 1, state, epoch, kid: issuer.key.kid });
        await ks.publishAsync(topics.keyserverStatus(), payload, { qos: 1, retain: true });
      } else {
        const payload = JSON.stringify({ v: 1, state, epoch });
        await term.publishAsync(topics.terminalStatus(who), payload, { qos: 1, retain: true });
      }
    },
    /** Publish a frame as terminal `as` (term-1, term-2 or term-r), on its own frames topic. */
    async send(frame: string, as = "term-1"): Promise<void> {
      const client = await terminal(as);
      await client.publishAsync(topics.frames(TID, as), frame, { qos: 0 });
    },
    /** The broker's ACL refuses a client's retained frame; publish one from inside the broker. */
    async retainFrame(frame: string): Promise<void> {
      await inBroker(topics.frames(TID, "term-1"), frame, 0);
    },
    /**
     * Make the target hold `term` online at `epoch`, the way it learns it: the terminal's retained status
     * (published from inside the broker, for any term), then a first relay frame, which the target
     * refuses `terminal_status_unknown` and starts following the terminal on. It is sent under `term`'s
     * own frames topic (the target refuses a token whose term differs from the topic's).
     */
    async relayReady(term: string, epoch: number): Promise<void> {
      await inBroker(topics.terminalStatus(term), JSON.stringify({ v: 1, state: "online", epoch }), 1);
      const accepted = h.target.stats().status_accepted;
      const from = events.length;
      await h.send(h.relay({ term, epoch }), term);
      await h.event(
        from,
        (e) => e.reason === "terminal_status_unknown" && e.term === term,
        "a first refusal",
      );
      await waitFor(() => h.target.stats().status_accepted > accepted, `${term}'s retained status`);
    },
    /** Wait for an event after position `from` in the log that matches `accept`. */
    event(from: number, accept: (e: TargetEvent) => boolean, what: string): Promise<TargetEvent> {
      return watcher.event(accept, { from: { events: from }, what });
    },
    state(
      from: number,
      accept: (s: TargetState) => boolean,
      what: string,
      timeoutMs = 5000,
    ): Promise<TargetState> {
      return watcher.state(accept, { from: { states: from }, what, timeoutMs });
    },
  };
  return h;
}

export type TargetHarness = Awaited<ReturnType<typeof targetHarness>>;
