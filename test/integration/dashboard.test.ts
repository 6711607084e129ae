import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { RunningGateway } from "../../gateway/gateway.js";
import { addDashboard } from "../../keyserver/admin/dashboard.js";
import { hashSecret } from "../../keyserver/passwords.js";
import type { TargetEvent, TargetState } from "../../schemas/messages.js";
import { Topics } from "../../schemas/topics.js";
import { adminContext, startTestGateway } from "../helpers/gateway.js";
import { nextJson, tempDir, waitFor } from "../helpers/wait.js";

const topics = new Topics();
const SECRET = "s".repeat(43);
const PASSWORD = "dashboard-password";

async function connect(o: Parameters<typeof connectMqtt>[0]): Promise<MqttClient> {
  const client = await connectMqtt({ reconnectPeriod: 0, ...o });
  onTestFinished(() => client.endAsync(true));
  return client;
}

/** door-1 and door-2 online with a retained state; dashboards `wall` (door-1) and `ops` (all). */
async function setup() {
  const gateway = await startTestGateway();
  const { store } = gateway.state;
  await store.addUser({ id: "alice", passwordHash: "scrypt$not-used" }, "test");
  await store.addTerminal({ serial: "p1", user: "alice" }, "test");
  const targets: Record<string, MqttClient> = {};
  for (const tid of ["door-1", "door-2"]) {
    await store.addTarget({ tid, secretHash: hashSecret(SECRET) }, "test");
    targets[tid] = await connect({ url: gateway.url, clientId: tid, username: tid, password: SECRET });
    await publishState(targets[tid], tid, "unavailable");
  }
  await addDashboard(adminContext(gateway), { id: "wall", password: PASSWORD, tids: ["door-1"] });
  await addDashboard(adminContext(gateway), { id: "ops", password: PASSWORD, tids: "all" });
  return { gateway, targets };
}

function publishState(client: MqttClient | undefined, tid: string, state: TargetState["state"]) {
  if (!client) throw new Error(`no client for ${tid}`);
  const payload: TargetState = { v: 1, tid, state, since: Date.now(), reason: "started" };
  return topics.publish(client, "state", { tid }, payload);
}

/** A dashboard over TLS with the gateway's CA, as a monitoring tool would connect. */
function dashboard(gateway: RunningGateway, user: string, clientId: string, password = PASSWORD) {
  return connect({ url: gateway.tlsUrl, tls: { ca: gateway.caPem }, clientId, username: user, password });
}

/** The broker's answer to one SUBSCRIBE (MQTT.js rejects a refusal, SUBACK 128). */
async function suback(client: MqttClient, filter: string): Promise<"granted" | "refused"> {
  try {
    const [g] = await client.subscribeAsync(filter, { qos: 1 });
    return g?.qos === 1 ? "granted" : "refused";
  } catch {
    return "refused";
  }
}

describe("dashboard accounts", () => {
  it("an all-targets dashboard watches targets/+/state and sees each change", async () => {
    const { gateway, targets } = await setup();
    const ops = await dashboard(gateway, "ops", "ops-screen");
    const retained = nextJson<TargetState>(ops, topics.state("door-2"));
    const granted = await ops.subscribeAsync(topics.filter("state", { tid: "+" }), { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    expect((await retained).state).toBe("unavailable");
    const change = nextJson<TargetState>(ops, topics.state("door-1"), (s) => s.state === "available");
    await publishState(targets["door-1"], "door-1", "available");
    expect((await change).tid).toBe("door-1");
  });

  it("a limited dashboard gets its own target and is refused another one and +", async () => {
    const { gateway, targets } = await setup();
    const wall = await dashboard(gateway, "wall", "wall-1");
    const filters = [
      topics.state("door-1"),
      topics.state("door-2"),
      topics.filter("events", { tid: "+" }),
      topics.events("door-1"),
    ];
    const verdicts: [string, string][] = [];
    for (const filter of filters) verdicts.push([filter, await suback(wall, filter)]);
    expect(verdicts).toEqual([
      [topics.state("door-1"), "granted"],
      [topics.state("door-2"), "refused"],
      [topics.filter("events", { tid: "+" }), "refused"],
      [topics.events("door-1"), "granted"],
    ]);
    const change = nextJson<TargetState>(wall, topics.state("door-1"), (s) => s.state === "available");
    await publishState(targets["door-1"], "door-1", "available");
    await publishState(targets["door-2"], "door-2", "available");
    expect((await change).tid).toBe("door-1");
  });

  it("refuses a wrong password and a client id that is not an id", async () => {
    const { gateway } = await setup();
    await expect(dashboard(gateway, "wall", "wall-1", "wrong-password")).rejects.toMatchObject({ code: 4 });
    await expect(dashboard(gateway, "wall", "wall#1")).rejects.toBeTruthy();
  });

  it("a refused publish drops only the dashboard's own connection", async () => {
    const { gateway, targets } = await setup();
    const ops = await dashboard(gateway, "ops", "ops-screen");
    await ops.subscribeAsync(topics.filter("state", { tid: "+" }), { qos: 1 });
    const wall = await dashboard(gateway, "wall", "wall-1");
    const closed = new Promise<void>((resolve) => wall.once("close", () => resolve()));
    wall.publish(topics.state("door-1"), JSON.stringify({ forged: true }), { qos: 0 });
    await closed;
    // The key server and the other dashboard stay on the line: the key server still answers as online.
    const status = await dashboard(gateway, "ops", "ops-status");
    const online = nextJson<{ state: string }>(status, topics.keyserverStatus());
    await status.subscribeAsync(topics.keyserverStatus(), { qos: 1 });
    expect((await online).state).toBe("online");
    const change = nextJson<TargetState>(ops, topics.state("door-1"), (s) => s.state === "available");
    await publishState(targets["door-1"], "door-1", "available");
    expect((await change).tid).toBe("door-1");
  });

  it("works with mosquitto_sub as it is (TLS with the gateway's CA, user name and password)", async () => {
    const { gateway } = await setup();
    const ca = join(tempDir("sparekey-dashboard-"), "ca.pem");
    writeFileSync(ca, gateway.caPem);
    const port = new URL(gateway.tlsUrl).port;
    const sub = spawn("mosquitto_sub", [
      ...["-h", "localhost", "-p", port, "--cafile", ca, "-u", "wall", "-P", PASSWORD, "-i", "wall-cli"],
      ...["-t", topics.state("door-1"), "-C", "1", "-W", "20"],
    ]);
    let out = "";
    sub.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => sub.on("close", resolve));
    expect(code).toBe(0);
    expect((JSON.parse(out) as TargetState).tid).toBe("door-1");
  });
});

describe("the access log", () => {
  it("records the events the targets publish, with the user behind the terminal and refusal counts", async () => {
    const { gateway, targets } = await setup();
    const door1 = targets["door-1"];
    if (!door1) throw new Error("door-1 not connected");
    const event = (e: Partial<TargetEvent>): TargetEvent => ({
      v: 1,
      tid: "door-1",
      ts: Date.now(),
      type: "auth_established",
      ...e,
    });
    // An event naming another target than its topic is no event of it: not recorded (sent first, so
    // it was handled by the time the later ones show).
    await topics.publish(door1, "events", { tid: "door-1" }, event({ tid: "door-2", type: "lockout" }));
    await topics.publish(door1, "events", { tid: "door-1" }, event({ term: "p1", slot: "s1" }));
    await topics.publish(
      door1,
      "events",
      { tid: "door-1" },
      event({ type: "auth_refused", term: "p1", reason: "bad_frame_signature", count: 4 }),
    );
    const { store } = gateway.state;
    await waitFor(async () => (await store.listAccessLog({ limit: 10 })).length >= 2, "two access log rows");
    const rows = await store.listAccessLog({ limit: 10 });
    expect(rows.map((r) => [r.tid, r.type, r.user, r.term, r.count])).toEqual([
      ["door-1", "auth_established", "alice", "p1", undefined],
      ["door-1", "auth_refused", "alice", "p1", 4],
    ]);
  });
});
