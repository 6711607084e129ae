import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { writeJsonAtomic } from "../../common/atomic-file.js";
import { seedOf } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { FobFile, TargetConfig } from "../../schemas/config.js";
import type { TargetState } from "../../schemas/messages.js";
import { Topics } from "../../schemas/topics.js";
import { Target } from "../../target/target.js";
import { startFobUse } from "../../terminal/use.js";
import { makeHolder, makeIssuer, mintCredential, mintRegistry, registryEntry } from "../helpers/issuer.js";
import { retainedUnder } from "../helpers/retained.js";
import { MOSQUITTO_URL, requireService } from "../helpers/services.js";
import { nextJson, tempDir } from "../helpers/wait.js";

/**
 * Terminals and targets are plain MQTT clients, so an existing broker can replace the
 * embedded one. These run the real Target and the real terminal frame loop over the machine's
 * Mosquitto, under a prefix unique to each test (Mosquitto keeps retained messages across runs), and
 * leave nothing retained there: each test clears what it retained, and the last check proves it.
 */

const TID = "door-1";
const FOB = "FOB-1";
/** Every prefix this file used, checked for leftovers at the end. */
const prefixes: string[] = [];

beforeAll(async () => {
  await requireService("mosquitto", MOSQUITTO_URL);
});

async function setup() {
  const topics = new Topics(`sparekey-it-${randomBytes(6).toString("hex")}/v1`);
  prefixes.push(topics.prefix);
  const issuer = makeIssuer();
  const fobKey = makeHolder();
  const dir = tempDir();
  const config: TargetConfig = {
    v: 1,
    tid: TID,
    broker_url: MOSQUITTO_URL,
    secret: randomBytes(24).toString("base64url"),
    prefix: topics.prefix,
    issuer_keys: [issuer.publicKey],
    period_ms: 150,
    timeout_periods: 2,
    state_dir: join(dir, "state"),
    keepalive_s: 5,
  };
  const configFile = join(dir, "target.json");
  writeJsonAtomic(configFile, config);
  const fob: FobFile = {
    v: 1,
    term: FOB,
    secret: randomBytes(24).toString("base64url"),
    seed: seedOf(fobKey.key.privateKey).toString("base64url"),
    credential: mintCredential(issuer, {
      mode: "fob",
      holder: fobKey.publicKeyB64,
      term: FOB,
      tids: [TID],
    }),
    broker_url: MOSQUITTO_URL,
    prefix: topics.prefix,
  };
  const fobFile = join(dir, "fob.json");
  writeJsonAtomic(fobFile, fob);

  const observer = await connectMqtt({
    url: MOSQUITTO_URL,
    clientId: `obs-${randomBytes(4).toString("hex")}`,
  });
  onTestFinished(async () => {
    // Leave no retained message behind on the shared Mosquitto: every topic this test's parts retain.
    const retained = [
      topics.state(TID),
      topics.challenge(TID),
      topics.registry(TID),
      topics.keyserverStatus(),
      topics.terminalStatus(FOB),
    ];
    for (const t of retained) await observer.publishAsync(t, "", { qos: 1, retain: true });
    await observer.endAsync();
  });
  // The target and the fob start only where a key server trusted by them has its status.
  await observer.publishAsync(
    topics.keyserverStatus(),
    JSON.stringify({ v: 1, state: "online", epoch: 0, kid: issuer.key.kid }),
    { qos: 1, retain: true },
  );
  await observer.subscribeAsync([topics.state(TID), topics.events(TID)], { qos: 1 });
  await observer.publishAsync(
    topics.registry(TID),
    mintRegistry(issuer, TID, { version: 1, slots: [registryEntry("slot-1")] }),
    { qos: 1, retain: true },
  );
  return { topics, config, configFile, fobFile, observer };
}

function stateOn(
  observer: MqttClient,
  topics: Topics,
  accept: (s: TargetState) => boolean,
  timeoutMs = 5000,
) {
  return nextJson<TargetState>(observer, topics.state(TID), accept, timeoutMs);
}

describe("over the machine's Mosquitto", () => {
  it("a fob opens the real target and the target falls back when its frames stop", async () => {
    const { topics, config, fobFile, observer } = await setup();
    const started = stateOn(observer, topics, (s) => s.reason === "started");
    const target = new Target({ config, logger: silentLogger() });
    await target.start();
    onTestFinished(() => target.stop());
    await started;

    const opened = stateOn(observer, topics, (s) => s.state === "available");
    const fob = await startFobUse({ fobFile, tid: TID, logger: silentLogger() });
    onTestFinished(() => fob.close());
    const available = await opened;
    expect(available).toEqual({
      v: 1,
      tid: TID,
      state: "available",
      slot: "slot-1",
      term: FOB,
      mode: "fob",
      since: available.since,
      reason: "frame_accepted",
    });

    // Out of range: the fob stays connected but its frames stop, so only the frame timeout can notice.
    const closed = stateOn(observer, topics, (s) => s.state === "unavailable");
    await fob.sender.stop();
    expect((await closed).reason).toBe("frame_timeout");
  });

  it("a target process killed with SIGKILL shows offline through its retained will", async () => {
    const { topics, configFile, observer } = await setup();
    const started = stateOn(observer, topics, (s) => s.reason === "started", 15_000);
    const child: ChildProcess = spawn(
      process.execPath,
      ["--import", "tsx", "cli/sparekey.ts", "target", "--config", configFile, "--log-level", "warn"],
      { cwd: join(import.meta.dirname, "..", ".."), stdio: "ignore" },
    );
    onTestFinished(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    await started;

    const offline = stateOn(observer, topics, (s) => s.state === "offline");
    child.kill("SIGKILL");
    const will = await offline;
    expect(will).toEqual({ v: 1, tid: TID, state: "offline", since: will.since, reason: "will" });
  }, 20_000);

  // Last in the file (tests run in order): every earlier test's teardown has run.
  it("leaves nothing retained on the machine's Mosquitto under the prefixes it used", async () => {
    expect(prefixes.length).toBeGreaterThan(0);
    for (const prefix of prefixes) expect(await retainedUnder(MOSQUITTO_URL, prefix)).toEqual([]);
  });
});
