import { createConnection } from "node:net";
import mqtt from "mqtt";
import { describe, expect, it, onTestFinished } from "vitest";
import { startBroker } from "../../broker/server.js";
import { generateSigningKey } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { hashPassword, hashSecret } from "../../keyserver/passwords.js";
import { KeyServer } from "../../keyserver/service.js";
import { createAuthenticator, type KeyServerState, openKeyServerState } from "../../keyserver/state.js";
import type { RpcReply } from "../../schemas/rpc.js";
import { Topics } from "../../schemas/topics.js";
import { runKeyServerOn, tempDataDir } from "../helpers/keyserver.js";
import { nextJson, waitFor } from "../helpers/wait.js";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const topics = new Topics();

async function seed(): Promise<KeyServerState> {
  const state = openKeyServerState(await tempDataDir());
  const { store } = state;
  await store.addUser({ id: "alice", passwordHash: await hashPassword("alice-password", FAST) }, "admin");
  await store.addUser({ id: "bob", passwordHash: await hashPassword("bob-password", FAST) }, "admin");
  await store.addTerminal({ serial: "p1", user: "alice" }, "admin");
  await store.addTerminal({ serial: "p2", user: "bob" }, "admin");
  await store.addTarget({ tid: "door-1", secretHash: hashSecret("t".repeat(43)) }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-1"] }, "admin");
  await store.addGrant({ user: "alice", slot: "s1", mode: "stored" }, "admin");
  await store.addGrant({ user: "bob", slot: "s1", mode: "stored" }, "admin");
  return state;
}

/** One CONNECT from `localAddress` (any of 127.0.0.0/8 reaches the loopback broker); resolves the CONNACK code. */
function connackFrom(
  url: string,
  localAddress: string,
  clientId: string,
  username: string,
  password: string,
) {
  const { hostname, port } = new URL(url);
  const client = new mqtt.MqttClient(
    () => createConnection({ host: hostname, port: Number(port), localAddress }),
    {
      clientId,
      username,
      password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    },
  );
  return new Promise<number>((resolve, reject) => {
    client.once("connect", () => resolve(0));
    client.once("error", (err) => {
      const code = (err as { code?: unknown }).code;
      if (typeof code === "number") resolve(code);
      else reject(err);
    });
  }).finally(() => client.end(true));
}

describe("key server limits under attack", () => {
  it("regression: wrong guesses naming the owner's serial from another address do not stop the owner logging in", async () => {
    const { broker } = await runKeyServerOn(await seed());
    const codes: number[] = [];
    for (let i = 0; i < 8; i++)
      codes.push(await connackFrom(broker.url, "127.0.0.2", "p1", "alice", `guess-${i}`));
    // After five failures the guesser is told to come back later (3), never a reserved code.
    expect(codes).toEqual([4, 4, 4, 4, 4, 3, 3, 3]);
    expect(await connackFrom(broker.url, "127.0.0.2", "p1", "alice", "alice-password")).toBe(3);
    expect(await connackFrom(broker.url, "127.0.0.1", "p1", "alice", "alice-password")).toBe(0);
  });

  it("regression: a flood of 2,100 RPCs from one terminal gets rate_limited replies, while another terminal's download succeeds and the key server stays connected", async () => {
    const state = await seed();
    const logger = silentLogger();
    // The broker's own terminal budget would slow this phone to 50 requests/s: loosen it, so what is
    // tested is the key server's defence, which must hold whatever the broker lets through.
    const broker = await startBroker({
      port: 0,
      authenticator: createAuthenticator(state, logger),
      logger,
      budgets: { terminal: { ratePerS: 1_000_000, burst: 1_000_000 } },
    });
    const ks = new KeyServer({ dataDir: state.dataDir, brokerUrl: broker.url, logger, state, pollMs: 20 });
    const clients: MqttClient[] = [];
    onTestFinished(async () => {
      for (const c of clients) await c.endAsync(true);
      await ks.stop();
      await broker.close();
      await state.close();
    });
    let keyserverDisconnects = 0;
    broker.aedes.on("clientDisconnect", (client) => {
      if (client.id === "keyserver") keyserverDisconnects++;
    });
    await ks.start();
    const phone = async (serial: string, user: string) => {
      const c = await connectMqtt({
        url: broker.url,
        clientId: serial,
        username: user,
        password: `${user}-password`,
        reconnectPeriod: 0,
      });
      clients.push(c);
      await c.subscribeAsync(topics.rpcReply(serial), { qos: 1 });
      return c;
    };
    const p1 = await phone("p1", "alice");
    const p2 = await phone("p2", "bob");
    const { key } = generateSigningKey();
    const codes = new Map<string, number>();
    p1.on("message", (_t, payload) => {
      const reply = JSON.parse(payload.toString()) as RpcReply;
      const code = reply.ok ? "ok" : (reply.error?.code ?? "none");
      codes.set(code, (codes.get(code) ?? 0) + 1);
    });
    const body = (id: string) => JSON.stringify({ v: 1, id, public_key: key.publicKeyB64, tid: "door-1" });
    for (let i = 0; i < 2_100; i++)
      void p1.publishAsync(topics.rpcRequest("p1", "download"), body(`flood-${i}`), { qos: 1 });

    const mine = nextJson<RpcReply>(p2, topics.rpcReply("p2"), (r) => r.id === "p2-download", 20_000);
    await p2.publishAsync(topics.rpcRequest("p2", "download"), body("p2-download"), { qos: 1 });
    expect(await mine).toMatchObject({ v: 1, id: "p2-download", ok: true, result: { slot: "s1" } });

    const total = () => [...codes.values()].reduce((a, b) => a + b, 0);
    await waitFor(() => total() === 2_100, "a reply to every flooded request", 60_000);
    expect([...codes.keys()].sort()).toEqual(["ok", "rate_limited"]);
    expect(codes.get("rate_limited")).toBeGreaterThan(2_000);
    expect(keyserverDisconnects).toBe(0);
    expect(p1.connected).toBe(true);
  }, 90_000);

  it("regression: terminals each within their broker rate, flooding RPCs together, do not get the key server dropped for its replies", async () => {
    const { broker, connect } = await runKeyServerOn(await seed());
    let keyserverDisconnects = 0;
    broker.aedes.on("clientDisconnect", (client) => {
      if (client.id === "keyserver") keyserverDisconnects++;
    });
    const phones = [
      ["p1", "alice"],
      ["p2", "bob"],
    ] as const;
    const perPhone = 140;
    const replies = new Map<string, number>();
    for (const [serial, user] of phones) {
      const c = await connect(serial, user, `${user}-password`);
      await c.subscribeAsync(topics.rpcReply(serial), { qos: 1 });
      c.on("message", () => replies.set(serial, (replies.get(serial) ?? 0) + 1));
      // Within the broker's burst of 100 plus what it holds back for at most a second: never dropped.
      for (let i = 0; i < perPhone; i++)
        void c.publishAsync(topics.rpcRequest(serial, "download"), JSON.stringify({ v: 1, id: `r${i}` }), {
          qos: 1,
        });
    }
    await waitFor(
      () => keyserverDisconnects > 0 || phones.every(([serial]) => replies.get(serial) === perPhone),
      "a reply to every request or the key server dropped",
      30_000,
    );
    expect(keyserverDisconnects).toBe(0);
    expect(Object.fromEntries(replies)).toEqual({ p1: perPhone, p2: perPhone });
  }, 60_000);
});
