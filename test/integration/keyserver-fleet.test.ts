import { describe, expect, it } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { verifyToken } from "../../common/jws.js";
import type { MqttClient } from "../../common/mqtt.js";
import { hashSecret } from "../../keyserver/passwords.js";
import { openKeyServerState } from "../../keyserver/state.js";
import type { RevocationStatus } from "../../schemas/keyserver.js";
import type { TargetEvent } from "../../schemas/messages.js";
import { TokenType } from "../../schemas/tokens.js";
import { Topics } from "../../schemas/topics.js";
import { runKeyServerOn, tempDataDir } from "../helpers/keyserver.js";
import { nextMessage, waitFor } from "../helpers/wait.js";

const TARGET_SECRET = "t".repeat(43);
const topics = new Topics();
const TIDS = ["door-1", "door-2", "door-3"];

async function startSystem() {
  const dataDir = await tempDataDir();
  const state = openKeyServerState(dataDir);
  for (const tid of TIDS)
    await state.store.addTarget({ tid, secretHash: hashSecret(TARGET_SECRET) }, "admin");
  await state.store.createSlot({ slot: "s1", tids: TIDS }, "admin");
  await state.store.createSlot({ slot: "s2", tids: ["door-1"] }, "admin");
  const { connect } = await runKeyServerOn(state);
  const target = (tid: string) => connect(tid, tid, TARGET_SECRET);
  /** `sparekey admin ...` in its own process's view: its own store connection to the same file. */
  const admin = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runAdmin(["--data", dataDir, ...argv], {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    });
    return { code, out, err };
  };
  return { state, admin, target };
}

function revocationsOf(payload: Buffer, sys: Awaited<ReturnType<typeof startSystem>>) {
  return verifyToken(payload.toString(), TokenType.revocations, sys.state.issuer.keyForKid).payload;
}

async function applied(client: MqttClient, tid: string, version: number): Promise<void> {
  const e: TargetEvent = { v: 1, tid, ts: Date.now(), type: "revocations_applied", version };
  await client.publishAsync(topics.events(tid), JSON.stringify(e), { qos: 1 });
}

describe("fleet revocation", () => {
  it("publishes the signed list retained with rising versions, written by the admin CLI in another connection", async () => {
    const sys = await startSystem();
    const door1 = await sys.target("door-1");
    await door1.subscribeAsync(topics.revocations(), { qos: 1 });

    const first = nextMessage(door1, topics.revocations());
    expect(await sys.admin("revoke", "--slot", "s2", "--fleet")).toEqual({
      code: 0,
      out: "slot s2 revoked fleet-wide (revocations version 1)\n",
      err: "",
    });
    const v1 = revocationsOf((await first).payload, sys);
    expect(v1).toEqual({ v: 1, version: 1, revoked: [{ slot: "s2" }], iat: v1.iat });

    const second = nextMessage(door1, topics.revocations());
    expect((await sys.admin("revoke", "--slot", "s1", "--below-gen", "1", "--fleet")).out).toBe(
      "slot s1 generations below 1 revoked fleet-wide (revocations version 2)\n",
    );
    const v2 = revocationsOf((await second).payload, sys);
    expect(v2).toEqual({
      v: 1,
      version: 2,
      revoked: [{ slot: "s1", below_gen: 1 }, { slot: "s2" }],
      iat: v2.iat,
    });

    // A target that connects later gets the latest list from the retained copy.
    const door3 = await sys.target("door-3");
    const retained = nextMessage(door3, topics.revocations());
    await door3.subscribeAsync(topics.revocations(), { qos: 1 });
    const m = await retained;
    expect(m.retain).toBe(true);
    expect(revocationsOf(m.payload, sys).version).toBe(2);

    const audit = JSON.parse((await sys.admin("audit", "--json")).out.split("\n")[0] ?? "") as {
      op: string;
      subject: string;
      outcome: string;
    }[];
    expect(audit.filter((a) => a.op === "fleet.revoke").map((a) => [a.subject, a.outcome])).toEqual([
      ["s2", "ok"],
      ["s1", "ok"],
    ]);
  });

  it("records confirmations from target events and lists every target as confirmed or pending", async () => {
    const sys = await startSystem();
    await sys.admin("revoke", "--slot", "s2", "--fleet");
    await sys.admin("revoke", "--slot", "s1", "--below-gen", "1", "--fleet");
    const door1 = await sys.target("door-1");
    const door2 = await sys.target("door-2");
    await applied(door1, "door-1", 2);
    await applied(door2, "door-2", 1);
    // A lying payload (door-2 claiming door-3 on its own topic) is not a confirmation for either.
    await door2.publishAsync(
      topics.events("door-2"),
      JSON.stringify({ v: 1, tid: "door-3", ts: Date.now(), type: "revocations_applied", version: 2 }),
      { qos: 1 },
    );
    await waitFor(async () => {
      const s = await sys.state.store.revocationStatus();
      // The acks above do not wait for the publisher, so wait for its mark as well as the acks.
      return s.published && s.targets.filter((t) => t.confirmed_version !== null).length === 2;
    }, "the list published and two confirmations recorded");

    const json = await sys.admin("revocations", "--json");
    const status = JSON.parse(json.out.split("\n")[0] ?? "") as RevocationStatus;
    expect(status).toEqual({
      version: 2,
      published: true,
      revoked: [{ slot: "s1", below_gen: 1 }, { slot: "s2" }],
      targets: [
        { tid: "door-1", status: "confirmed", confirmed_version: 2 },
        { tid: "door-2", status: "pending", confirmed_version: 1 },
        { tid: "door-3", status: "pending", confirmed_version: null },
      ],
    });

    // An older version confirmed later never lowers what a target confirmed.
    await applied(door1, "door-1", 1);
    await applied(door2, "door-2", 2);
    await waitFor(async () => {
      const s = await sys.state.store.revocationStatus();
      return s.targets.find((t) => t.tid === "door-2")?.status === "confirmed";
    }, "door-2 confirmed");
    expect(await sys.admin("revocations")).toEqual({
      code: 0,
      out:
        "fleet revocations version 2\n" +
        "tid     status     confirmed_version\n" +
        "door-1  confirmed  2\n" +
        "door-2  confirmed  2\n" +
        "door-3  pending    -\n" +
        "2 confirmed, 1 pending\n",
      err: "",
    });
  });
});
