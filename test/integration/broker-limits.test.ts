import { type Socket, connect as tcpConnect } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { DEFAULT_LIMITS, resolveLimits, TokenBucket } from "../../broker/limits.js";
import { PacketSizeScanner } from "../../broker/packet-guard.js";
import { type BrokerOptions, type RunningBroker, startBroker } from "../../broker/server.js";
import { silentLogger } from "../../common/log.js";
import type { ConnectOptions, MqttClient } from "../../common/mqtt.js";
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

async function broker(limits: Partial<BrokerOptions> = {}): Promise<RunningBroker> {
  const b = await startBroker({ port: 0, authenticator, logger: silentLogger(), ...limits });
  onTestFinished(() => b.close());
  return b;
}

function connect(
  b: RunningBroker,
  clientId: string,
  extra: Partial<ConnectOptions> = {},
): Promise<MqttClient> {
  return connectAs(b, clientId, PASSWORD, extra);
}

/** A raw TCP connection and a promise of its close, failing after `timeoutMs`. */
async function rawSocket(
  b: RunningBroker,
  timeoutMs: number,
): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = tcpConnect(b.port, "127.0.0.1");
  onTestFinished(() => {
    socket.destroy();
  });
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const closed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return { socket, closed };
}

describe("PacketSizeScanner", () => {
  // PINGREQ (2 bytes) and a PUBLISH whose 10-byte body is all 0xff, which must be skipped, not read as headers.
  const ping = [0xc0, 0x00];
  const publish = [0x30, 0x0a, ...Array<number>(10).fill(0xff)];

  it("accepts a stream of packets within the limit whether it arrives whole or byte by byte", () => {
    const bytes = Buffer.from([...ping, ...publish, ...ping, ...publish]);
    const whole = new PacketSizeScanner(12).feed(bytes);
    const split = new PacketSizeScanner(12);
    const byByte = [...bytes].map((b) => split.feed(Buffer.from([b])));
    expect({ whole, byByte: byByte.every(Boolean) }).toEqual({ whole: true, byByte: true });
  });

  it("refuses a packet one byte over the limit", () => {
    expect(new PacketSizeScanner(11).feed(Buffer.from([...ping, ...publish]))).toBe(false);
  });

  it("refuses a huge announced length as soon as the header arrives, before any body", () => {
    const scanner = new PacketSizeScanner(65_536);
    expect([0x30, 0xff, 0xff, 0xff].map((b) => scanner.feed(Buffer.from([b])))).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });

  it("refuses a Remaining Length of more than four bytes", () => {
    expect(
      new PacketSizeScanner(Number.MAX_SAFE_INTEGER).feed(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])),
    ).toBe(false);
  });
});

describe("TokenBucket", () => {
  it("lets a burst through, then says how long until the next token, taking nothing meanwhile", () => {
    const bucket = new TokenBucket(10, 3);
    expect([1, 2, 3, 4, 5].map(() => bucket.take(0))).toEqual([0, 0, 0, 100, 100]);
  });

  it("refills at the sustained rate", () => {
    const bucket = new TokenBucket(10, 2);
    expect([
      bucket.take(0),
      bucket.take(0),
      bucket.take(0),
      bucket.take(100),
      bucket.take(100),
      bucket.take(300),
    ]).toEqual([0, 0, 100, 0, 100, 0]);
  });
});

describe("resolveLimits", () => {
  it("fills in the defaults and refuses a topic depth too shallow for the prefix", () => {
    expect(resolveLimits({ maxPacketBytes: 1024 }, "sparekey/v1")).toEqual({
      ...DEFAULT_LIMITS,
      maxPacketBytes: 1024,
    });
    expect(() => resolveLimits({ maxTopicLevels: 5 }, "sparekey/v1")).toThrow(
      expect.objectContaining({ code: "config_invalid" }),
    );
    expect(() => resolveLimits({ budgets: { terminal: { ratePerS: 0 } } }, "sparekey/v1")).toThrow(
      expect.objectContaining({ code: "config_invalid" }),
    );
    expect(resolveLimits({ budgets: { target: { burst: 7 } } }, "sparekey/v1").budgets).toEqual({
      ...DEFAULT_LIMITS.budgets,
      target: { ...DEFAULT_LIMITS.budgets.target, burst: 7 },
    });
  });
});

describe("broker limits", () => {
  it("drops a client whose publish is over the size limit, delivers none of it, and keeps serving others", async () => {
    const b = await broker({ maxPacketBytes: 1024 });
    const door = await connect(b, "door-1");
    await door.subscribeAsync(topics.filter("frames", { tid: "door-1", term: "+" }));
    const seen: number[] = [];
    door.on("message", (_t, payload) => seen.push(payload.length));

    const phone1 = await connect(b, "phone-1");
    phone1.publish(topics.frames("door-1", "phone-1"), "x".repeat(2000));
    await waitFor(() => !phone1.connected, "phone-1 to be disconnected");

    const phone2 = await connect(b, "phone-2");
    const small = nextMessage(door, topics.frames("door-1", "phone-2"));
    await phone2.publishAsync(topics.frames("door-1", "phone-2"), "a.b.c");
    await small;
    expect({ seen, oversize: b.stats().oversize_packet }).toEqual({ seen: [5], oversize: 1 });
  });

  it("closes a raw connection that announces a huge packet without sending its body, without waiting", async () => {
    // A long connect timeout, so only the size guard can close the socket within the deadline.
    const b = await broker({ connectTimeoutMs: 60_000 });
    const { socket, closed } = await rawSocket(b, 2000);
    socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
    await closed;
    expect(b.stats().oversize_packet).toBe(1);
  });

  it("closes a TCP connection that never sends CONNECT after the connect timeout", async () => {
    const b = await broker({ connectTimeoutMs: 100 });
    const { closed } = await rawSocket(b, 3000);
    await closed;
    expect(b.stats().connect_timeout).toBe(1);
  });

  it("refuses a subscription deeper than the topic depth limit with SUBACK 128 and drops a deep publish", async () => {
    const b = await broker();
    const ks = await connect(b, "keyserver");
    const deep = "sparekey/v1/targets/+/state/a/b/c/d"; // 9 levels, limit 8
    await expect(ks.subscribeAsync(deep)).rejects.toMatchObject({ packet: { granted: [128] } });
    expect(b.stats()).toMatchObject({ topic_too_deep: 1, subscribe_refused: 0 });

    const phone = await connect(b, "phone-1");
    phone.publish(`sparekey/v1/targets/door-1/frames${"/x".repeat(50)}`, "a.b.c");
    await waitFor(() => !phone.connected, "phone-1 to be disconnected");
    expect(b.stats()).toMatchObject({ topic_too_deep: 2, publish_refused: 0 });
  });

  it("refuses a keepalive above the ceiling with CONNACK 2", async () => {
    const b = await broker({ keepaliveMaxS: 60 });
    await expect(connect(b, "phone-1", { keepalive: 61 })).rejects.toMatchObject({ code: 2 });
    const ok = await connect(b, "phone-2", { keepalive: 60 });
    expect({ connected: ok.connected, refused: b.stats().keepalive_refused }).toEqual({
      connected: true,
      refused: 1,
    });
  });

  // Security review: without a cap, one terminal login could subscribe to challenges of any number of
  // targets and grow the broker's memory at will.
  it("caps the filters a terminal holds at once, and frees a place on unsubscribe", async () => {
    const b = await broker({ maxTerminalSubscriptions: 3 });
    const phone = await connect(b, "phone-1");
    // MQTT.js turns a SUBACK holding 128 into an error that carries the SUBACK.
    await expect(
      phone.subscribeAsync(
        ["d1", "d2", "d3", "d4"].map((tid) => topics.challenge(tid)),
        { qos: 0 },
      ),
    ).rejects.toMatchObject({ packet: { cmd: "suback", granted: [0, 0, 0, 128] } });
    // Subscribing to a filter it already holds takes no new place.
    expect((await phone.subscribeAsync(topics.challenge("d1"), { qos: 0 })).map((g) => g.qos)).toEqual([0]);
    await phone.unsubscribeAsync(topics.challenge("d2"));
    expect((await phone.subscribeAsync(topics.challenge("d4"), { qos: 0 })).map((g) => g.qos)).toEqual([0]);
    expect(b.stats()).toMatchObject({ subscriptions_capped: 1, subscribe_refused: 0 });
  });
});
