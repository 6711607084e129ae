import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.js";
import { Topics } from "../../schemas/topics.js";
import type { MessageBus } from "../../terminal/bus.js";
import { LineMonitor, type LineStatus } from "../../terminal/line-monitor.js";

class FakeBus implements MessageBus {
  readonly subscribed = new Set<string>();
  private readonly handlers = new Set<(topic: string, payload: Buffer, retain: boolean) => void>();
  async subscribe(topic: string): Promise<void> {
    this.subscribed.add(topic);
  }
  async unsubscribe(topic: string): Promise<void> {
    this.subscribed.delete(topic);
  }
  async publishAsync(): Promise<void> {}
  onMessage(handler: (topic: string, payload: Buffer, retain: boolean) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }
  deliver(topic: string, value: unknown): void {
    for (const h of this.handlers) h(topic, Buffer.from(JSON.stringify(value)), true);
  }
}

/** Plays the MQTT.js client's connection events. */
class FakeConnection extends EventEmitter {
  connected = true;
  drop(): void {
    this.connected = false;
    this.emit("close");
    this.emit("offline");
  }
  retry(): void {
    this.emit("reconnect");
  }
  restore(): void {
    this.connected = true;
    this.emit("connect");
  }
}

const topics = new Topics();
const UP: LineStatus = { up: true, connected: true, why: undefined };

async function monitor(needsKeyserver: boolean) {
  const bus = new FakeBus();
  const connection = new FakeConnection();
  const seen: LineStatus[] = [];
  const m = new LineMonitor({
    connection,
    bus,
    topics,
    needsKeyserver,
    logger: silentLogger(),
    onChange: (s) => seen.push(s),
  });
  await m.start();
  return { m, bus, connection, seen };
}

const KID = "k".repeat(43);
const ks = (state: "online" | "offline", epoch: number) => ({ v: 1, state, epoch, kid: KID });

describe("LineMonitor", () => {
  it("reports the line down when its own connection drops and up again once reconnected", async () => {
    const { m, connection, seen } = await monitor(false);
    connection.drop();
    connection.retry();
    connection.restore();
    expect(seen).toEqual([
      UP,
      { up: false, connected: false, why: "connection lost" },
      { up: false, connected: false, why: "connection lost, reconnecting" },
      UP,
    ]);
    await m.stop();
    connection.drop();
    expect(seen).toHaveLength(4);
  });

  it("in relay mode, follows the key server's status and reports it offline as a down line", async () => {
    const { m, bus, seen } = await monitor(true);
    expect([...bus.subscribed]).toEqual([topics.keyserverStatus()]);
    bus.deliver(topics.keyserverStatus(), ks("online", 10));
    bus.deliver(topics.keyserverStatus(), ks("offline", 10));
    bus.deliver(topics.keyserverStatus(), ks("online", 11));
    expect(seen).toEqual([UP, { up: false, connected: true, why: "key server offline" }, UP]);
    await m.stop();
    expect(bus.subscribed.size).toBe(0);
  });

  it("ignores a key server status with an older epoch than the latest seen", async () => {
    const { m, bus, seen } = await monitor(true);
    bus.deliver(topics.keyserverStatus(), ks("online", 11));
    // The late will of the connection before: must not cut a live line.
    bus.deliver(topics.keyserverStatus(), ks("offline", 10));
    expect(m.status()).toEqual(UP);
    bus.deliver(topics.keyserverStatus(), ks("offline", 11));
    bus.deliver(topics.keyserverStatus(), ks("online", 10));
    expect(m.status()).toEqual({ up: false, connected: true, why: "key server offline" });
    bus.deliver(topics.keyserverStatus(), { v: 1, state: "online" });
    expect(m.status().up).toBe(false);
    expect(seen).toEqual([UP, { up: false, connected: true, why: "key server offline" }]);
    await m.stop();
  });

  it("for a stored key, does not follow the key server at all", async () => {
    const { m, bus, seen } = await monitor(false);
    expect(bus.subscribed.size).toBe(0);
    bus.deliver(topics.keyserverStatus(), ks("offline", 99));
    expect(seen).toEqual([UP]);
    await m.stop();
  });

  it("names its own lost connection before an offline key server", async () => {
    const { m, bus, connection } = await monitor(true);
    bus.deliver(topics.keyserverStatus(), ks("offline", 1));
    connection.drop();
    expect(m.status()).toEqual({ up: false, connected: false, why: "connection lost" });
    connection.restore();
    expect(m.status()).toEqual({ up: false, connected: true, why: "key server offline" });
    await m.stop();
  });
});
