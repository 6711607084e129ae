import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addGrant, addUser } from "../../keyserver/admin/accounts.js";
import { addDashboard } from "../../keyserver/admin/dashboard.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { adminContext, observeTarget, startTestGateway } from "../helpers/gateway.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const logger = silentLogger();
const topics = new Topics();
const TID = "front-door";
const PASSWORD = "home-assistant-password";

/**
 * Home Assistant's MQTT platform keys, pinned from its `lock` and `sensor` schemas (entity base schema
 * included): a discovery payload with any other key is refused by Home Assistant.
 */
const HA_ENTITY_KEYS = [
  "availability",
  "availability_mode",
  "availability_template",
  "availability_topic",
  "default_entity_id",
  "device",
  "enabled_by_default",
  "encoding",
  "entity_category",
  "entity_picture",
  "icon",
  "json_attributes_template",
  "json_attributes_topic",
  "name",
  "object_id",
  "origin",
  "payload_available",
  "payload_not_available",
  "platform",
  "qos",
  "unique_id",
];
const HA_LOCK_KEYS = new Set([
  ...HA_ENTITY_KEYS,
  "code_format",
  "command_template",
  "command_topic",
  "optimistic",
  "payload_lock",
  "payload_open",
  "payload_reset",
  "payload_unlock",
  "retain",
  "state_jammed",
  "state_locked",
  "state_locking",
  "state_open",
  "state_opening",
  "state_topic",
  "state_unlocked",
  "state_unlocking",
  "value_template",
]);
const HA_SENSOR_KEYS = new Set([
  ...HA_ENTITY_KEYS,
  "device_class",
  "expire_after",
  "force_update",
  "last_reset_value_template",
  "options",
  "state_class",
  "state_topic",
  "suggested_display_precision",
  "unit_of_measurement",
  "value_template",
]);
const HA_DEVICE_KEYS = new Set([
  "configuration_url",
  "connections",
  "hw_version",
  "identifiers",
  "manufacturer",
  "model",
  "model_id",
  "name",
  "serial_number",
  "suggested_area",
  "sw_version",
  "via_device",
]);
const HA_AVAILABILITY_KEYS = new Set([
  "topic",
  "value_template",
  "payload_available",
  "payload_not_available",
]);

async function connect(o: Parameters<typeof connectMqtt>[0]): Promise<MqttClient> {
  const client = await connectMqtt({ reconnectPeriod: 0, ...o });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** The lock, alice (a stored grant on it) and bob (no grant); Home Assistant accounts unlocking as each. */
async function home() {
  const gateway = await startTestGateway();
  const admin = adminContext(gateway);
  const root = tempDir("sparekey-ha-");
  const config = await pairTarget(admin, {
    tid: TID,
    out: join(root, `${TID}.json`),
    brokerUrl: gateway.url,
    stateDir: join(root, "target-state"),
    periodMs: 1000,
  });
  await createSlot(admin, { slot: "front-key", tids: [TID] });
  for (const user of ["alice", "bob"]) await addUser(admin, { user, password: `${user}-password-0123` });
  await addGrant(admin, { slot: "front-key", user: "alice", mode: "stored" });
  await addDashboard(admin, { id: "ha", password: PASSWORD, tids: "all", unlockAs: "alice" });
  await addDashboard(admin, { id: "ha-bob", password: PASSWORD, tids: "all", unlockAs: "bob" });
  await gateway.keyserver.publishNow();
  const watch = await observeTarget(gateway, TID);
  const at = watch.mark();
  const target = new Target({ config, logger });
  await target.start();
  onTestFinished(() => target.stop());
  await watch.event(at, (e) => e.type === "registry_applied", "the first registry");
  await watch.challenge({ challenges: 0 }, "a challenge");
  return { gateway, watch };
}

/** Home Assistant's own discovery subscription, as its MQTT integration makes it. */
async function homeAssistant(gateway: RunningGateway, account: string, clientId: string) {
  const ha = await connect({ url: gateway.url, clientId, username: account, password: PASSWORD });
  const configs = new Map<string, Record<string, unknown> | "">();
  ha.on("message", (topic, payload) => {
    if (!topic.startsWith(`${topics.discoveryPrefix}/`)) return;
    const text = payload.toString();
    configs.set(topic, text === "" ? "" : (JSON.parse(text) as Record<string, unknown>));
  });
  const granted = await ha.subscribeAsync(`${topics.discoveryPrefix}/+/+/+/config`, { qos: 1 });
  expect(granted.map((g) => g.qos)).toEqual([1]);
  return { ha, configs };
}

function auditOf(gateway: RunningGateway, actor: string) {
  return async () =>
    (await gateway.state.store.listAudit(200)).filter((r) => r.actor === actor && r.op === "unlock");
}

function unknownKeys(value: Record<string, unknown>, known: ReadonlySet<string>): string[] {
  return Object.keys(value).filter((k) => !known.has(k));
}

describe("Home Assistant", () => {
  it("discovers each paired target as a lock and a refusal sensor with only Home Assistant's keys", async () => {
    const { gateway } = await home();
    const { configs } = await homeAssistant(gateway, "ha", "hass-1");
    const lockTopic = topics.discovery("lock", TID);
    const sensorTopic = topics.discovery("sensor", TID);
    await waitFor(() => configs.has(lockTopic) && configs.has(sensorTopic), "both discovery configs");
    const lock = configs.get(lockTopic);
    const sensor = configs.get(sensorTopic);
    if (!lock || !sensor) throw new Error("empty discovery config");
    expect(lockTopic).toBe(`homeassistant/lock/sparekey/${TID}/config`);
    expect(unknownKeys(lock, HA_LOCK_KEYS)).toEqual([]);
    expect(unknownKeys(sensor, HA_SENSOR_KEYS)).toEqual([]);
    for (const entity of [lock, sensor]) {
      expect(unknownKeys(entity.device as Record<string, unknown>, HA_DEVICE_KEYS)).toEqual([]);
      for (const a of entity.availability as Record<string, unknown>[])
        expect(unknownKeys(a, HA_AVAILABILITY_KEYS)).toEqual([]);
    }
    expect(lock).toMatchObject({
      unique_id: `sparekey_${TID}_lock`,
      state_topic: topics.state(TID),
      json_attributes_topic: topics.state(TID),
      command_topic: topics.haCommand("ha", TID),
      payload_unlock: "UNLOCK",
      payload_lock: "LOCK",
      device: { identifiers: [`sparekey_${TID}`], manufacturer: "sparekey" },
      availability: [{ topic: topics.state(TID), payload_not_available: "offline" }],
    });
    expect(sensor).toMatchObject({
      unique_id: `sparekey_${TID}_last_refusal`,
      state_topic: topics.events(TID),
    });
  });

  it("UNLOCK on the command topic opens the target when the account's user holds a grant", async () => {
    const { gateway, watch } = await home();
    const { ha } = await homeAssistant(gateway, "ha", "hass-1");
    const at = watch.mark();
    await ha.publishAsync(topics.haCommand("ha", TID), "UNLOCK", { qos: 1 });
    const applied = await watch.event(at, (e) => e.type === "unlock_applied", "the unlock");
    expect(applied.term).toBe("ha");
    const audit = auditOf(gateway, "ha");
    await waitFor(async () => (await audit()).some((r) => r.outcome === "applied"), "the audited outcome");
    expect((await audit()).map((r) => [r.subject, r.outcome])).toEqual([
      [TID, "sent"],
      [TID, "applied"],
    ]);
  });

  it("UNLOCK is refused and audited when the account's user holds no grant", async () => {
    const { gateway, watch } = await home();
    const { ha } = await homeAssistant(gateway, "ha-bob", "hass-2");
    const at = watch.mark();
    await ha.publishAsync(topics.haCommand("ha-bob", TID), "UNLOCK", { qos: 1 });
    const audit = auditOf(gateway, "ha-bob");
    await waitFor(async () => (await audit()).length > 0, "the audited refusal");
    expect((await audit()).map((r) => [r.subject, r.outcome])).toEqual([[TID, "no_grant"]]);
    // Barrier: alice's account unlocks after bob's try; no command of bob's came before it.
    const { ha: alice } = await homeAssistant(gateway, "ha", "hass-1");
    await alice.publishAsync(topics.haCommand("ha", TID), "UNLOCK", { qos: 1 });
    await watch.event(at, (e) => e.type === "unlock_applied", "alice's unlock");
    expect(
      watch.events
        .slice(at.events)
        .filter((e) => e.type.startsWith("unlock_"))
        .map((e) => e.term),
    ).toEqual(["ha"]);
  });

  // Regression (review): UNLOCK had no quota, so one account flooding it cost a grant check, an audit row
  // and an unlock in flight per message; the RPC quota (a burst of 20, 4 in flight) now comes first.
  it("a flood of UNLOCKs from one account is bounded by its quota: most cost nothing, others are served", async () => {
    const { gateway, watch } = await home();
    const { ha: bob } = await homeAssistant(gateway, "ha-bob", "hass-2");
    const at = watch.mark();
    await Promise.all(
      Array.from({ length: 200 }, () =>
        bob.publishAsync(topics.haCommand("ha-bob", TID), "UNLOCK", { qos: 1 }),
      ),
    );
    // Barrier: alice's account is served after bob's flood arrived.
    const { ha: alice } = await homeAssistant(gateway, "ha", "hass-1");
    await alice.publishAsync(topics.haCommand("ha", TID), "UNLOCK", { qos: 1 });
    await watch.event(at, (e) => e.type === "unlock_applied", "alice's unlock");
    const audited = (await auditOf(gateway, "ha-bob")()).length;
    expect(audited).toBeGreaterThan(0);
    expect(audited).toBeLessThanOrEqual(20);
  });

  it("the broker refuses a command on another account's topic", async () => {
    const { gateway } = await home();
    const bob = await connect({
      url: gateway.url,
      clientId: "hass-2",
      username: "ha-bob",
      password: PASSWORD,
    });
    const closed = new Promise<void>((resolve) => bob.once("close", () => resolve()));
    bob.publish(topics.haCommand("ha", TID), "UNLOCK", { qos: 1 });
    await closed;
    expect(await auditOf(gateway, "ha")()).toEqual([]);
  });
});
