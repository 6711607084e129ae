import { describe, expect, it } from "vitest";
import type { RunningBroker } from "../../broker/server.js";
import { startBroker } from "../../broker/server.js";
import { silentLogger } from "../../common/log.js";
import type { ConnectOptions, MqttClient } from "../../common/mqtt.js";
import { Topics } from "../../schemas/topics.js";
import { connectAs, startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { nextMessage, waitFor } from "../helpers/wait.js";

const PASSWORD = "correct horse";
const authenticator = tableAuthenticator({
  "phone-1": { role: "terminal", password: PASSWORD },
  "phone-2": { role: "terminal", password: PASSWORD },
  "door-1": { role: "target", password: PASSWORD },
  keyserver: { role: "keyserver", password: PASSWORD },
});
const topics = new Topics();

function connect(
  broker: RunningBroker,
  clientId: string,
  extra: Partial<ConnectOptions> = {},
): Promise<MqttClient> {
  return connectAs(broker, clientId, PASSWORD, extra);
}

describe("broker authentication", () => {
  it("refuses a CONNECT with a wrong password with CONNACK code 4", async () => {
    const broker = await startTestBroker(authenticator);
    await expect(connect(broker, "phone-1", { password: "wrong" })).rejects.toMatchObject({ code: 4 });
    expect(broker.stats()).toMatchObject({ connect_refused: 1 });
  });

  it("refuses a client id that is not a sparekey id with CONNACK code 2, before asking the authenticator", async () => {
    let asked = 0;
    const broker = await startTestBroker({
      async authenticate(clientId) {
        asked++;
        return { role: "terminal", id: clientId };
      },
    });
    await expect(connect(broker, "phone+1")).rejects.toMatchObject({ code: 2 });
    await expect(connect(broker, "x".repeat(65))).rejects.toMatchObject({ code: 2 });
    expect({ asked, refused: broker.stats().client_id_refused }).toEqual({ asked: 0, refused: 2 });
  });

  it("refuses a client whose principal names another id than its client id", async () => {
    const broker = await startTestBroker({
      async authenticate() {
        return { role: "terminal", id: "someone-else" };
      },
    });
    await expect(connect(broker, "phone-1")).rejects.toMatchObject({ code: 4 });
  });

  it("accepts a known client and lets it use its own topics", async () => {
    const broker = await startTestBroker(authenticator);
    const ks = await connect(broker, "keyserver");
    await ks.subscribeAsync(topics.terminalStatus("phone-1"), { qos: 1 });
    const phone = await connect(broker, "phone-1");
    const got = nextMessage(ks, topics.terminalStatus("phone-1"));
    await phone.publishAsync(topics.terminalStatus("phone-1"), '{"v":1,"state":"online","epoch":1}', {
      qos: 1,
    });
    expect((await got).payload.toString()).toEqual('{"v":1,"state":"online","epoch":1}');
  });
});

describe("broker ACL over the wire", () => {
  it("answers a terminal's forbidden subscribe with SUBACK 128 and delivers it nothing", async () => {
    const broker = await startTestBroker(authenticator);
    const door = await connect(broker, "door-1");
    await door.subscribeAsync(topics.filter("frames", { tid: "door-1", term: "+" }));
    const phone1 = await connect(broker, "phone-1");
    // MQTT.js turns a SUBACK 128 into an error that carries the SUBACK.
    await expect(
      phone1.subscribeAsync(topics.filter("frames", { tid: "door-1", term: "+" })),
    ).rejects.toMatchObject({
      packet: { cmd: "suback", granted: [128] },
    });
    await phone1.subscribeAsync(topics.challenge("door-1"));
    const seen: string[] = [];
    phone1.on("message", (topic) => seen.push(topic));

    const phone2 = await connect(broker, "phone-2");
    const frameAtDoor = nextMessage(door, topics.frames("door-1", "phone-2"));
    await phone2.publishAsync(topics.frames("door-1", "phone-2"), "a.b.c");
    await frameAtDoor;
    // The door saw the frame; its next challenge reaches phone-1 after anything routed to it before.
    const challenge = nextMessage(phone1, topics.challenge("door-1"));
    await door.publishAsync(topics.challenge("door-1"), "{}");
    await challenge;
    expect({ seen, stats: broker.stats() }).toMatchObject({
      seen: [topics.challenge("door-1")],
      stats: { subscribe_refused: 1 },
    });
  });

  it("drops a client that publishes on a forbidden topic and does not deliver the message", async () => {
    const broker = await startTestBroker(authenticator);
    const ks = await connect(broker, "keyserver");
    await ks.subscribeAsync("sparekey/v1/targets/+/state", { qos: 1 });
    const seen: string[] = [];
    ks.on("message", (_topic, payload) => seen.push(payload.toString()));

    const phone = await connect(broker, "phone-1");
    phone.publish(topics.state("door-1"), "forged by phone-1");
    await waitFor(() => !phone.connected, "phone-1 to be disconnected");

    const door = await connect(broker, "door-1");
    const genuine = nextMessage(ks, topics.state("door-1"));
    await door.publishAsync(topics.state("door-1"), "from door-1", { qos: 1 });
    await genuine;
    expect({ seen, publish_refused: broker.stats().publish_refused }).toEqual({
      seen: ["from door-1"],
      publish_refused: 1,
    });
  });

  it("drops a terminal that publishes a retained frame", async () => {
    const broker = await startTestBroker(authenticator);
    const phone = await connect(broker, "phone-1");
    phone.publish(topics.frames("door-1", "phone-1"), "a.b.c", { retain: true });
    await waitFor(() => !phone.connected, "phone-1 to be disconnected");
    expect(broker.stats()).toMatchObject({ publish_refused: 1 });
  });

  it("refuses a CONNECT whose will names a forbidden topic, so the will is never delivered", async () => {
    const broker = await startTestBroker(authenticator);
    const ks = await connect(broker, "keyserver");
    await ks.subscribeAsync("sparekey/v1/targets/+/state", { qos: 1 });
    const seen: string[] = [];
    ks.on("message", (_topic, payload) => seen.push(payload.toString()));

    const forgedWill = {
      topic: topics.state("door-1"),
      payload: "forged will",
      qos: 1 as const,
      retain: true,
    };
    await expect(connect(broker, "phone-1", { will: forgedWill })).rejects.toMatchObject({ code: 5 });

    const door = await connect(broker, "door-1");
    const genuine = nextMessage(ks, topics.state("door-1"));
    await door.publishAsync(topics.state("door-1"), "from door-1", { qos: 1 });
    await genuine;
    expect({ seen, will_refused: broker.stats().will_refused }).toEqual({
      seen: ["from door-1"],
      will_refused: 1,
    });
  });

  it("delivers a permitted will when its client's connection is lost", async () => {
    const broker = await startTestBroker(authenticator);
    const ks = await connect(broker, "keyserver");
    await ks.subscribeAsync(topics.terminalStatus("phone-1"), { qos: 1 });
    const will = {
      topic: topics.terminalStatus("phone-1"),
      payload: '{"v":1,"state":"offline","epoch":3}',
      qos: 1 as const,
      retain: true,
    };
    const phone = await connect(broker, "phone-1", { will });
    const offline = nextMessage(ks, will.topic);
    phone.stream.destroy();
    expect((await offline).payload.toString()).toEqual(will.payload);
  });
});

describe("broker listener", () => {
  it("fails with port_in_use naming the port when the port is taken", async () => {
    const first = await startTestBroker(authenticator);
    const second = startBroker({ port: first.port, authenticator, logger: silentLogger() });
    await expect(second).rejects.toMatchObject({
      code: "port_in_use",
      message: expect.stringContaining(String(first.port)),
    });
  });
});
