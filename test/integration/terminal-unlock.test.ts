import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt } from "../../common/mqtt.js";
import { Topics } from "../../schemas/topics.js";
import { login } from "../../terminal/login.js";
import { unlock } from "../../terminal/unlock.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { retainKeyserverStatus } from "../helpers/retained.js";
import { tempDir } from "../helpers/wait.js";

const topics = new Topics();
const TID = "lock-1";
const TERM = "phone-1";
const CMD_ID = "cmd_0123456789abcdef";

type Answer = (body: Record<string, unknown>) => Record<string, unknown> | undefined;

/** A terminal logged in to a broker where a plain client plays the key server's `unlock` op. */
async function setup(answer: Answer) {
  const b = await startTestBroker(
    tableAuthenticator({
      [TERM]: { role: "terminal", password: "pw-phone" },
      keyserver: { role: "keyserver", password: "pw-ks" },
    }),
  );
  // Login and every later connection first check for a key server status.
  await retainKeyserverStatus(b, "u".repeat(43));
  const dir = tempDir();
  await login({
    dir,
    brokerUrl: b.url,
    serial: TERM,
    user: "alice",
    password: "pw-phone",
    logger: silentLogger(),
  });
  const ks = await connectMqtt({
    url: b.url,
    clientId: "keyserver",
    username: "keyserver",
    password: "pw-ks",
    reconnectPeriod: 0,
  });
  const requests: Record<string, unknown>[] = [];
  ks.on("message", (_topic, payload) => {
    const body = JSON.parse(payload.toString()) as Record<string, unknown>;
    requests.push(body);
    const reply = answer(body);
    if (reply) {
      void ks.publishAsync(topics.rpcReply(TERM), JSON.stringify({ v: 1, id: body.id, ...reply }), {
        qos: 1,
      });
    }
  });
  await ks.subscribeAsync(topics.rpcRequest(TERM, "unlock"), { qos: 1 });
  const out: string[] = [];
  const err: string[] = [];
  const io = (env: Record<string, string> = {}) => ({
    stdout: { write: (t: string) => out.push(t) },
    stderr: { write: (t: string) => err.push(t) },
    env,
    logger: silentLogger(),
  });
  return { dir, requests, out, err, io };
}

const outcome = (o: Record<string, unknown>) => ({ ok: true, result: { cmd_id: CMD_ID, ...o } });
const passwordRequired = { ok: false, error: { code: "password_required", message: "password needed" } };

describe("terminal unlock", () => {
  it("prints applied and exits 0 when the target applied the command", async () => {
    const { dir, requests, out, err, io } = await setup(() => outcome({ outcome: "applied" }));
    const code = await runTerminal(["unlock", "--target", TID, "--duration-ms", "2000", "--dir", dir], io());
    expect({ code, out, err }).toEqual({ code: 0, out: ["applied\n"], err: [] });
    expect(requests).toEqual([{ v: 1, id: expect.any(String), tid: TID, duration_ms: 2000 }]);
  });

  it("prints the target's reason and exits 4 when it refused", async () => {
    const { dir, out, err, io } = await setup(() =>
      outcome({ outcome: "refused", reason: "unlock_replayed" }),
    );
    const code = await runTerminal(["unlock", "--target", TID, "--dir", dir], io());
    expect({ code, out, err }).toEqual({ code: 4, out: ["refused: unlock_replayed\n"], err: [] });
  });

  it("prints timed_out and exits 5 when the target did not answer in time", async () => {
    const { dir, out, err, io } = await setup(() => outcome({ outcome: "timed_out" }));
    const code = await runTerminal(["unlock", "--target", TID, "--dir", dir], io());
    expect({ code, out, err }).toEqual({ code: 5, out: ["timed_out\n"], err: [] });
  });

  it("says clearly that the password is needed when the key wants it and none was given", async () => {
    const { dir, requests, out, err, io } = await setup(() => passwordRequired);
    const code = await runTerminal(["unlock", "--target", TID, "--dir", dir], io());
    expect({ code, out, err }).toEqual({
      code: 1,
      out: [],
      err: [
        `error password_required: this key needs your password again for a remote unlock of ${TID}; ` +
          "give it with --password-file F or SPAREKEY_PASSWORD\n",
      ],
    });
    expect(requests).toHaveLength(1);
  });

  it("sends SPAREKEY_PASSWORD only after the key server asked for it", async () => {
    const { dir, requests, out, io } = await setup((body) =>
      body.password === "pw-again" ? outcome({ outcome: "applied" }) : passwordRequired,
    );
    const code = await runTerminal(
      ["unlock", "--target", TID, "--dir", dir],
      io({ SPAREKEY_PASSWORD: "pw-again" }),
    );
    expect({ code, out }).toEqual({ code: 0, out: ["applied\n"] });
    expect(requests).toEqual([
      { v: 1, id: expect.any(String), tid: TID },
      { v: 1, id: expect.any(String), tid: TID, password: "pw-again" },
    ]);
  });

  it("sends the password from --password-file with the first request and never prints it", async () => {
    const { dir, requests, out, err, io } = await setup(() => outcome({ outcome: "applied" }));
    const file = join(tempDir(), "pw");
    writeFileSync(file, "pw-from-file\n");
    const code = await runTerminal(["unlock", "--target", TID, "--password-file", file, "--dir", dir], io());
    expect(code).toBe(0);
    expect(requests).toEqual([{ v: 1, id: expect.any(String), tid: TID, password: "pw-from-file" }]);
    expect([...out, ...err].join("")).not.toMatch(/pw-from-file|pw-phone/);
  });

  it("unlock() returns the outcome, and throws timeout when the key server never answers", async () => {
    const answered = await setup(() => outcome({ outcome: "refused", reason: "stale_nonce" }));
    await expect(unlock({ dir: answered.dir, tid: TID, logger: silentLogger() })).resolves.toEqual({
      outcome: "refused",
      cmd_id: CMD_ID,
      reason: "stale_nonce",
    });
    const silent = await setup(() => undefined);
    await expect(
      unlock({ dir: silent.dir, tid: TID, logger: silentLogger(), timeoutMs: 200 }),
    ).rejects.toMatchObject({ code: "timeout" });
  });
});
