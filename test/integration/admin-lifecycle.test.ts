import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { hashPassword, hashSecret } from "../../keyserver/passwords.js";
import { openKeyServerState } from "../../keyserver/state.js";
import { TargetConfig } from "../../schemas/config.js";
import type { Challenge } from "../../schemas/messages.js";
import type { RpcReply } from "../../schemas/rpc.js";
import { Topics } from "../../schemas/topics.js";
import { validator } from "../../schemas/validate.js";
import { runKeyServerOn, tempDataDir } from "../helpers/keyserver.js";
import { nextJson, waitFor } from "../helpers/wait.js";

const FAST = { N: 2 ** 10, r: 8, p: 1 };
const TARGET_SECRET = "t".repeat(43);
const topics = new Topics();

/** door-1 in slot s1, alice with phone p-alice granted relay on s1; the admin CLI on the same data dir. */
async function startSystem() {
  const dataDir = await tempDataDir();
  const state = openKeyServerState(dataDir);
  const { store } = state;
  await store.addUser({ id: "alice", passwordHash: await hashPassword("alice-password", FAST) }, "admin");
  await store.addTerminal({ serial: "p-alice", user: "alice" }, "admin");
  await store.addTarget({ tid: "door-1", secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-1"] }, "admin");
  await store.addGrant({ user: "alice", slot: "s1", mode: "relay" }, "admin");
  const { ks, broker, connect } = await runKeyServerOn(state);
  const admin = async (...argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runAdmin(["--data", dataDir, ...argv], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
    });
    return { code, out: out.join(""), err: err.join("") };
  };
  let epoch = 0;
  /** p-alice connected, its retained `online` status out with a new line epoch and seen by the key server. */
  const phone = async () => {
    const c = await connect("p-alice", "alice", "alice-password");
    await c.subscribeAsync(topics.rpcReply("p-alice"), { qos: 1 });
    epoch = Math.max(Date.now(), epoch + 1);
    const line = epoch;
    const status = JSON.stringify({ v: 1, state: "online", epoch: line });
    await c.publishAsync(topics.terminalStatus("p-alice"), status, { qos: 1, retain: true });
    await waitFor(
      () => ks.terminalStatusView?.onlineEpoch("p-alice") === line,
      "the key server saw the status",
    );
    return c;
  };
  const door = await connect("door-1", "door-1", TARGET_SECRET);
  const challenge = async (): Promise<string> => {
    const nonce = randomBytes(16).toString("base64url");
    const ch: Challenge = { v: 1, tid: "door-1", nonce, period_ms: 100, ts: Date.now() };
    await door.publishAsync(topics.challenge("door-1"), JSON.stringify(ch), { qos: 0, retain: true });
    await waitFor(() => ks.challengeView?.isLive("door-1", nonce) === true, "the key server saw the nonce");
    return nonce;
  };
  /** A one-off CONNECT that is expected to fail: its CONNACK code. */
  const refusedConnect = (clientId: string, username: string, password: string) =>
    connectMqtt({ url: broker.url, clientId, username, password, reconnectPeriod: 0 }).then(
      async (c) => {
        await c.endAsync(true);
        return "connected";
      },
      (err: { code?: number }) => err.code,
    );
  return { dataDir, admin, phone, challenge, connect, refusedConnect };
}

async function relay(client: MqttClient, nonce: string): Promise<RpcReply> {
  const id = randomBytes(8).toString("hex");
  const reply = nextJson<RpcReply>(client, topics.rpcReply("p-alice"), (r) => r.id === id);
  await client.publishAsync(
    topics.rpcRequest("p-alice", "relay"),
    JSON.stringify({ v: 1, id, tid: "door-1", nonce }),
    { qos: 1 },
  );
  return reply;
}

describe("the lifecycle against a running key server", () => {
  it("refuses a disabled terminal's relay and its CONNECT with code 5, and lets it in again once enabled", async () => {
    const sys = await startSystem();
    const open = await sys.phone();
    expect(await relay(open, await sys.challenge())).toMatchObject({ ok: true });

    expect(await sys.admin("terminal", "disable", "--serial", "p-alice")).toEqual({
      code: 0,
      out: "terminal p-alice disabled\n",
      err: "",
    });
    // The connection opened before stays up, but the key server no longer signs for it.
    expect(await relay(open, await sys.challenge())).toMatchObject({
      ok: false,
      error: { code: "terminal_disabled", message: "terminal p-alice is disabled" },
    });
    expect(await sys.refusedConnect("p-alice", "alice", "alice-password")).toBe(5);
    // A wrong password still gets code 4: being disabled is told only to who knows the password.
    expect(await sys.refusedConnect("p-alice", "alice", "wrong-password")).toBe(4);

    expect((await sys.admin("terminal", "enable", "--serial", "p-alice")).code).toBe(0);
    const again = await sys.phone();
    expect(await relay(again, await sys.challenge())).toMatchObject({ ok: true });

    // Disabling the user stops every phone of the user the same way, with its own code.
    expect((await sys.admin("user", "disable", "--user", "alice")).code).toBe(0);
    expect(await relay(again, await sys.challenge())).toMatchObject({
      ok: false,
      error: { code: "user_disabled" },
    });
    expect(await sys.refusedConnect("p-alice", "alice", "alice-password")).toBe(5);
  });

  it("refuses a target's old secret after rotate-secret and lets the new config connect", async () => {
    const sys = await startSystem();
    const out = join(sys.dataDir, "..", `door-1-${randomBytes(4).toString("hex")}.json`);
    const r = await sys.admin("target", "rotate-secret", "--tid", "door-1", "--out", out);
    expect(r).toEqual({
      code: 0,
      out: `target door-1 has a new secret; config written to ${out}\n`,
      err: "",
    });
    const config = validator(TargetConfig).parse(JSON.parse(readFileSync(out, "utf8")));
    expect(config.secret).not.toBe(TARGET_SECRET);
    expect(await sys.refusedConnect("door-1", "door-1", TARGET_SECRET)).toBe(4);
    const fresh = await sys.connect("door-1", "door-1", config.secret);
    expect(fresh.connected).toBe(true);
  });
});
