import { describe, expect, it, onTestFinished } from "vitest";
import { type BrokerOptions, type RunningBroker, startBroker } from "../../broker/server.js";
import { silentLogger } from "../../common/log.js";
import type { MqttClient } from "../../common/mqtt.js";
import { Topics } from "../../schemas/topics.js";
import { connectAs, tableAuthenticator } from "../helpers/broker.js";
import { nextMessage, waitFor } from "../helpers/wait.js";

const PASSWORD = "pw";
const authenticator = tableAuthenticator({
  "phone-1": { role: "terminal", password: PASSWORD },
  "phone-2": { role: "terminal", password: PASSWORD },
  "door-1": { role: "target", password: PASSWORD },
  keyserver: { role: "keyserver", password: PASSWORD },
});
const topics = new Topics();

async function broker(options: Partial<BrokerOptions> = {}): Promise<RunningBroker> {
  const b = await startBroker({ port: 0, authenticator, logger: silentLogger(), ...options });
  onTestFinished(() => b.close());
  return b;
}

const connect = (b: RunningBroker, clientId: string): Promise<MqttClient> => connectAs(b, clientId, PASSWORD);

/** Every payload `client` receives on `topic`, in arrival order. */
function collect(client: MqttClient, topic: string): string[] {
  const seen: string[] = [];
  client.on("message", (t, payload) => {
    if (t === topic) seen.push(payload.toString());
  });
  return seen;
}

const numbered = (n: number, suffix = ""): string[] => Array.from({ length: n }, (_, i) => `${i}${suffix}`);

/**
 * Publishes every payload at QoS 1 back to back; resolves when all are acknowledged. A caller waits
 * on what arrives (or a disconnect) first: a dropped client leaves its acknowledgements pending.
 */
function sendAll(client: MqttClient, topic: string, payloads: string[]): Promise<unknown> {
  const acked = Promise.all(payloads.map((p) => client.publishAsync(topic, p, { qos: 1 })));
  acked.catch(() => {});
  return acked;
}

/** A round trip through the broker by two well-behaved clients: it is still serving others. */
async function roundTrip(b: RunningBroker): Promise<void> {
  const door = await connect(b, "door-1");
  await door.subscribeAsync(topics.filter("frames", { tid: "door-1", term: "+" }));
  const phone = await connect(b, "phone-2");
  const arrived = nextMessage(door, topics.frames("door-1", "phone-2"), {
    accept: (m) => m.payload.toString() === "rt.a.b",
  });
  await phone.publishAsync(topics.frames("door-1", "phone-2"), "rt.a.b");
  await arrived;
}

describe("broker budgets", () => {
  // Regression (issue "Hold under attack"): aedes handles a whole socket read at one instant, so
  // delays held in authorizePublish added up and the rate limit turned a burst of about 150 into a drop.
  it("budgets that slow, never drop: 200 back-to-back publishes from one terminal all arrive, in order, and it stays connected", async () => {
    const b = await broker();
    const door = await connect(b, "door-1");
    await door.subscribeAsync(topics.filter("frames", { tid: "door-1", term: "+" }), { qos: 1 });
    const seen = collect(door, topics.frames("door-1", "phone-1"));
    const phone = await connect(b, "phone-1");
    const sent = numbered(200, ".a.b");
    const acked = sendAll(phone, topics.frames("door-1", "phone-1"), sent);
    await waitFor(
      () => seen.length === sent.length || !phone.connected,
      "all 200 frames at the door",
      15_000,
    );
    expect({ seen, connected: phone.connected, rate_limited: b.stats().rate_limited }).toEqual({
      seen: sent,
      connected: true,
      rate_limited: 0,
    });
    await acked;
    // It was slowed: past its burst of 100, packets waited for their tokens.
    expect(b.stats().packets_held).toBeGreaterThan(0);
  });

  it("budgets that slow, never drop: the key server's 5,000 back-to-back publishes pass on its own budget, not a terminal's", async () => {
    const b = await broker();
    const phone = await connect(b, "phone-1");
    const rpc = topics.rpcReply("phone-1");
    await phone.subscribeAsync(rpc, { qos: 1 });
    const seen = collect(phone, rpc);
    const ks = await connect(b, "keyserver");
    const sent = numbered(5_000);
    // At a terminal's 50/s this would take 100 s; the deadline is far below that.
    const acked = sendAll(ks, rpc, sent);
    await waitFor(
      () => seen.length === sent.length || !ks.connected,
      "all 5,000 replies at the terminal",
      15_000,
    );
    expect({ same: seen.join() === sent.join(), connected: ks.connected, stats: b.stats() }).toMatchObject({
      same: true,
      connected: true,
      stats: { packets_held: 0, rate_limited: 0 },
    });
    await acked;
  });

  it("budgets that slow, never drop: the key server over its rate is slowed and never cut off", async () => {
    const b = await broker({ budgets: { keyserver: { ratePerS: 400, burst: 10 } } });
    const phone = await connect(b, "phone-1");
    const rpc = topics.rpcReply("phone-1");
    await phone.subscribeAsync(rpc, { qos: 1 });
    const seen = collect(phone, rpc);
    const ks = await connect(b, "keyserver");
    const sent = numbered(600);
    const acked = sendAll(ks, rpc, sent);
    await waitFor(
      () => seen.length === sent.length || !ks.connected,
      "all 600 replies at the terminal",
      15_000,
    );
    expect({ seen, connected: ks.connected, rate_limited: b.stats().rate_limited }).toEqual({
      seen: sent,
      connected: true,
      rate_limited: 0,
    });
    await acked;
    expect(b.stats().packets_held).toBeGreaterThan(0);
  });

  it("budgets that slow, never drop: a terminal that stays over its budget past the hard ceiling is dropped, and others are still served", async () => {
    const b = await broker({ budgets: { terminal: { ratePerS: 10, burst: 2, holdMaxMs: 200 } } });
    const phone = await connect(b, "phone-1");
    // 500 publishes at 10/s would take 50 s: far past the 200 ms ceiling.
    for (const p of numbered(500, ".a.b")) phone.publish(topics.frames("door-1", "phone-1"), p);
    await waitFor(() => !phone.connected, "phone-1 to be dropped", 10_000);
    expect(b.stats().rate_limited).toBe(1);
    await roundTrip(b);
  });
});
