import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import type { Budget } from "../../broker/limits.js";
import { PacketGuard } from "../../broker/packet-guard.js";

/*
 * PacketGuard over a real loopback socket pair, read the way aedes reads it; only the clock is
 * fake, so a hold ends when the test says.
 */

const CONNECT = Buffer.from([0x10, 0x03, 0x01, 0x02, 0x03]);
const publish = (n: number) => Buffer.from([0x30, 0x03, 0x00, 0x01, n]);

/** Polls on the I/O loop (timers are fake here) until `condition` holds. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (condition()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

async function pair(budgetEvents = { held: 0, over: 0, oversize: 0 }) {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const client = tcpConnect(port, "127.0.0.1");
  client.on("error", () => {});
  const socket = await accepted;
  onTestFinished(() => {
    client.destroy();
    socket.destroy();
    server.close();
  });
  const guard = new PacketGuard(socket, 64, {
    onOversize: () => budgetEvents.oversize++,
    onHeld: () => budgetEvents.held++,
    onOverBudget: () => budgetEvents.over++,
  });
  guard.on("error", () => {});
  const got: Buffer[] = [];
  guard.on("data", (chunk: Buffer) => got.push(chunk));
  let clientClosed = false;
  client.on("close", () => {
    clientClosed = true;
  });
  return {
    client,
    socket,
    guard,
    events: budgetEvents,
    handedOn: () => Buffer.concat(got),
    clientClosed: () => clientClosed,
  };
}

const budget = (b: Partial<Budget> = {}): Budget => ({ ratePerS: 1, burst: 2, holdMaxMs: null, ...b });

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("PacketGuard", () => {
  it("hands aedes nothing past the CONNECT before open(), and pauses the socket meanwhile", async () => {
    const p = await pair();
    p.client.write(Buffer.concat([CONNECT, publish(1), publish(2)]));
    await until(() => p.handedOn().length === CONNECT.length, "the CONNECT handed on");
    await until(() => p.socket.isPaused(), "the socket paused");
    expect(p.handedOn()).toEqual(CONNECT);
    p.guard.open(budget());
    await until(() => p.handedOn().length === 15, "both publishes handed on");
    expect(p.handedOn()).toEqual(Buffer.concat([CONNECT, publish(1), publish(2)]));
  });

  it("holds a packet over the budget with the socket paused, and hands it on when its token is due", async () => {
    const p = await pair();
    p.guard.open(budget());
    p.client.write(Buffer.concat([CONNECT, publish(1), publish(2), publish(3)]));
    await until(
      () => p.handedOn().length === 15 && p.events.held === 1,
      "the burst handed on, the third held",
    );
    expect({ paused: p.socket.isPaused(), handedOn: p.handedOn().length }).toEqual({
      paused: true,
      handedOn: 15,
    });
    vi.advanceTimersByTime(1000);
    await until(() => p.handedOn().length === 20, "the third handed on");
    expect({ paused: p.socket.isPaused(), held: p.events.held, over: p.events.over }).toEqual({
      paused: false,
      held: 1,
      over: 0,
    });
  });

  it("drops a client that stays over its budget past the hard ceiling", async () => {
    const p = await pair();
    p.guard.open(budget({ burst: 1, holdMaxMs: 1500 }));
    p.client.write(Buffer.concat([CONNECT, ...[1, 2, 3, 4, 5].map(publish)]));
    await until(() => p.events.held === 1, "the second publish held");
    vi.advanceTimersByTime(1000);
    await until(() => p.events.held === 2, "the third publish held");
    vi.advanceTimersByTime(1000);
    await until(() => p.clientClosed(), "the connection closed");
    expect({ events: p.events, handedOn: p.handedOn().length }).toEqual({
      events: { held: 2, over: 1, oversize: 0 },
      handedOn: 20,
    });
  });

  it("never drops a client whose budget has no ceiling, however long it is held", async () => {
    const p = await pair();
    p.guard.open(budget({ burst: 1 }));
    p.client.write(Buffer.concat([CONNECT, ...[1, 2, 3, 4, 5].map(publish)]));
    for (let held = 1; held <= 4; held++) {
      await until(() => p.events.held === held, `publish ${held + 1} held`);
      vi.advanceTimersByTime(1000);
    }
    await until(() => p.handedOn().length === 30, "all five publishes handed on");
    expect({ over: p.events.over, closed: p.clientClosed() }).toEqual({ over: 0, closed: false });
  });

  it("refuses a header announcing more than the limit without handing on any of it", async () => {
    const p = await pair();
    p.guard.open(budget({ burst: 10 }));
    p.client.write(Buffer.concat([CONNECT, publish(1)]));
    await until(() => p.handedOn().length === 10, "the first two packets handed on");
    p.client.write(Buffer.concat([Buffer.from([0x30, 0x7f]), Buffer.alloc(100)]));
    await until(() => p.clientClosed(), "the connection closed");
    expect({ oversize: p.events.oversize, handedOn: p.handedOn() }).toEqual({
      oversize: 1,
      handedOn: Buffer.concat([CONNECT, publish(1)]),
    });
  });
});
