import Database from "better-sqlite3";
import { describe, expect, it, onTestFinished } from "vitest";
import type { BrokerLimits } from "../../broker/limits.js";
import { type RunningBroker, startBroker } from "../../broker/server.js";
import { verifyToken } from "../../common/jws.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { dataDirPaths } from "../../keyserver/data-dir.js";
import { floorChange } from "../../keyserver/grants.js";
import { hashSecret } from "../../keyserver/passwords.js";
import { REPUBLISH_PAGE } from "../../keyserver/registry-publisher.js";
import { KeyServer } from "../../keyserver/service.js";
import { createAuthenticator, type KeyServerState, openKeyServerState } from "../../keyserver/state.js";
import type { KeyStore } from "../../keyserver/store/store.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { tempDataDir } from "../helpers/keyserver.js";
import { nextMessage, type Received } from "../helpers/wait.js";

const TARGET_SECRET = "t".repeat(43);
const topics = new Topics();
const logger = silentLogger();

/** door-1 and door-2 in slot s1, door-2 also in s2, which is revoked fleet-wide (list version 1). */
async function pairedState(): Promise<KeyServerState> {
  const state = openKeyServerState(await tempDataDir());
  for (const tid of ["door-1", "door-2"])
    await state.store.addTarget({ tid, secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await state.store.createSlot({ slot: "s1", tids: ["door-1", "door-2"] }, "admin");
  await state.store.createSlot({ slot: "s2", tids: ["door-2"] }, "admin");
  await state.store.revokeFleet({ slot: "s2" }, "admin", floorChange);
  return state;
}

/** Brokers and key servers of one test, stopped in order (key servers first) when it finishes. */
function fleet(state: KeyServerState) {
  const brokers: RunningBroker[] = [];
  const servers: KeyServer[] = [];
  const clients: MqttClient[] = [];
  onTestFinished(async () => {
    for (const c of clients) await c.endAsync(true);
    for (const ks of servers) await ks.stop();
    for (const b of brokers) await b.close();
    await state.close();
  });
  return {
    async broker(port = 0, limits: Partial<BrokerLimits> = {}) {
      const b = await startBroker({
        port,
        authenticator: createAuthenticator(state, logger),
        logger,
        ...limits,
      });
      brokers.push(b);
      return b;
    },
    async keyServer(broker: RunningBroker, store: KeyStore = state.store) {
      const ks = new KeyServer({
        dataDir: state.dataDir,
        brokerUrl: broker.url,
        logger,
        state: { ...state, store },
        pollMs: 20,
      });
      servers.push(ks);
      await ks.start();
      return ks;
    },
    /** A target's connection, subscribed to its registry and the fleet list; `seen` in arrival order. */
    async target(broker: RunningBroker, tid: string) {
      const seen: Received[] = [];
      const c = await connectMqtt({
        url: broker.url,
        clientId: tid,
        username: tid,
        password: TARGET_SECRET,
        reconnectPeriod: 0,
      });
      clients.push(c);
      c.on("message", (topic, payload, packet) => seen.push({ topic, payload, retain: packet.retain }));
      const registry = nextMessage(c, topics.registry(tid), { timeoutMs: 15_000 });
      const revocations = nextMessage(c, topics.revocations(), { timeoutMs: 15_000 });
      await c.subscribeAsync([topics.registry(tid), topics.revocations()], { qos: 1 });
      return { client: c, seen, registry, revocations };
    },
  };
}

function registryOf(state: KeyServerState, m: Received) {
  return verifyToken(m.payload.toString(), TokenType.registry, state.issuer.keyForKid).payload;
}
function revocationsOf(state: KeyServerState, m: Received) {
  return verifyToken(m.payload.toString(), TokenType.revocations, state.issuer.keyForKid).payload;
}

describe("nothing forgotten on a broker restart", () => {
  it("republishes every registry and the fleet list when the key server reconnects to a broker restarted on the same port", {
    timeout: 30_000,
  }, async () => {
    const state = await pairedState();
    const sys = fleet(state);
    const first = await sys.broker();
    await sys.keyServer(first);
    expect(await state.store.pendingRegistries()).toEqual([]);

    await first.close();
    const restarted = await sys.broker(first.port);
    // Live or retained, whichever comes first: the key server reconnects by itself within a second.
    const door1 = await sys.target(restarted, "door-1");
    const door2 = await sys.target(restarted, "door-2");
    await Promise.all([door1.registry, door1.revocations, door2.registry, door2.revocations]);

    // A target connecting afterwards finds both retained.
    await door1.client.endAsync();
    const later = await sys.target(restarted, "door-1");
    const [registry, revocations] = await Promise.all([later.registry, later.revocations]);
    expect([registry.retain, revocations.retain]).toEqual([true, true]);
    expect(registryOf(state, registry)).toEqual({
      v: 1,
      tid: "door-1",
      version: 2,
      slots: [{ slot: "s1", min_gen: 1, status: "active" }],
      issuers: state.issuer.registryIssuers(),
      iat: expect.any(Number),
    });
    expect(revocationsOf(state, revocations)).toEqual({
      v: 1,
      version: 1,
      revoked: [{ slot: "s2" }],
      iat: expect.any(Number),
    });
  });

  it("republishes on start to a fresh broker, the fleet list before the registries", async () => {
    const state = await pairedState();
    const sys = fleet(state);
    const before = await sys.keyServer(await sys.broker());
    await before.stop();
    expect(await state.store.pendingRegistries()).toEqual([]);
    expect(await state.store.pendingRevocations()).toBeUndefined();

    const fresh = await sys.broker();
    const door2 = await sys.target(fresh, "door-2");
    await sys.keyServer(fresh);
    const [registry] = await Promise.all([door2.registry, door2.revocations]);
    expect(door2.seen.map((m) => m.topic)).toEqual([topics.revocations(), topics.registry("door-2")]);
    expect(registryOf(state, registry)).toMatchObject({
      tid: "door-2",
      version: 4,
      slots: [
        { slot: "s1", min_gen: 1, status: "active" },
        { slot: "s2", min_gen: 1, status: "revoked" },
      ],
    });
  });

  it("republishes 5,000 registries a page at a time, the event loop turning between pages", {
    timeout: 120_000,
  }, async () => {
    const count = 5000;
    const state = openKeyServerState(await tempDataDir());
    // Fixture written straight into the file in one transaction: 5,000 audited pairings would take long.
    const db = new Database(dataDirPaths(state.dataDir).db);
    const insert = db.prepare(
      "INSERT INTO targets (tid, secret_hash, created, registry_version, published_version) VALUES (?, ?, 0, 1, 1)",
    );
    const secretHash = hashSecret(TARGET_SECRET);
    db.transaction(() => {
      for (let i = 0; i < count; i++) insert.run(`t-${String(i).padStart(5, "0")}`, secretHash);
    })();
    db.close();

    const pages: number[] = [];
    const store: KeyStore = {
      ...state.store,
      async registries(page) {
        const found = await state.store.registries(page);
        pages.push(found.length);
        return found;
      },
    };
    const sys = fleet(state);
    // The key server's role budget (5,000/s, a burst of 20,000, never dropped) lets 5,000 registries pass.
    const broker = await sys.broker(0);
    let turns = 0;
    let turning = true;
    const turn = () => {
      turns += 1;
      if (turning) setImmediate(turn);
    };
    setImmediate(turn);
    await sys.keyServer(broker, store);
    turning = false;

    expect(pages.reduce((a, b) => a + b, 0)).toBe(count);
    expect(Math.max(...pages)).toBeLessThanOrEqual(REPUBLISH_PAGE);
    expect(turns).toBeGreaterThanOrEqual(pages.length);
    const last = await sys.target(broker, "t-04999");
    const m = await last.registry;
    expect(m.retain).toBe(true);
    expect(registryOf(state, m)).toEqual({
      v: 1,
      tid: "t-04999",
      version: 1,
      slots: [],
      issuers: state.issuer.registryIssuers(),
      iat: expect.any(Number),
    });
  });
});
