import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { SparekeyError } from "../../common/errors.js";
import { decodeToken, signToken } from "../../common/jws.js";
import { generateSigningKey } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { DownloadResult } from "../../schemas/rpc.js";
import { TokenType } from "../../schemas/tokens.js";
import { download } from "../../terminal/download.js";
import { readKey, readWallet } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { openSession } from "../../terminal/session.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { retainKeyserverStatus } from "../helpers/retained.js";
import { tempDir, waitFor } from "../helpers/wait.js";

const issuer = generateSigningKey().key;
type Answer = "issue" | "no_grant" | "silent";

/** Plays the key server's `download` op with a plain MQTT client and a test issuer key. */
async function fakeKeyserver(url: string, answer: Answer, slot = "slot_a"): Promise<{ requests: unknown[] }> {
  const ks: MqttClient = await connectMqtt({
    url,
    clientId: "keyserver",
    username: "keyserver",
    password: "ks-secret",
    reconnectPeriod: 0,
  });
  const requests: unknown[] = [];
  ks.on("message", (topic, payload) => {
    const term = topic.split("/")[4] ?? "";
    const req = JSON.parse(payload.toString()) as { id: string; public_key: string; tid?: string };
    requests.push(req);
    if (answer === "silent") return;
    const reply =
      answer === "no_grant"
        ? { v: 1, id: req.id, ok: false, error: { code: "no_grant", message: `no key for ${req.tid}` } }
        : {
            v: 1,
            id: req.id,
            ok: true,
            result: {
              credential: signToken(
                TokenType.credential,
                {
                  v: 1,
                  slot,
                  gen: 2,
                  tids: ["lock-1", "lock-2"],
                  mode: "stored",
                  holder: req.public_key,
                  term,
                  nbf: 1_900_000_000,
                  exp: 1_900_086_400,
                  iat: 1_900_000_000,
                  jti: "jti_0123456789abcdef",
                },
                issuer,
              ),
              slot,
              gen: 2,
              tids: ["lock-1", "lock-2"],
            },
          };
    void ks.publishAsync(`sparekey/v1/terminals/${term}/rpc`, JSON.stringify(reply), { qos: 1 });
  });
  await ks.subscribeAsync("sparekey/v1/keyserver/rpc/+/download", { qos: 1 });
  return { requests };
}

async function loggedIn(): Promise<{ url: string; dir: string }> {
  const b = await startTestBroker(
    tableAuthenticator({
      "phone-1": { role: "terminal", password: "pw-phone" },
      keyserver: { role: "keyserver", password: "ks-secret" },
    }),
  );
  // Login and every later connection first check for a key server status.
  await retainKeyserverStatus(b, issuer.kid);
  const dir = tempDir();
  await login({
    dir,
    brokerUrl: b.url,
    serial: "phone-1",
    user: "alice",
    password: "pw-phone",
    logger: silentLogger(),
  });
  return { url: b.url, dir };
}

describe("terminal download", () => {
  // Regression (security review): `__proto__` is a valid id, and assigning it into the wallet changed
  // the object's prototype instead of storing the credential.
  it("stores a credential for a slot named __proto__ as an ordinary entry", async () => {
    const { url, dir } = await loggedIn();
    await fakeKeyserver(url, "issue", "__proto__");
    await download({ dir, target: "lock-1", logger: silentLogger() });
    const wallet = readWallet(dir, "phone-1");
    expect(Object.keys(wallet.credentials)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(wallet.credentials)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(wallet.credentials, "__proto__")?.value).toMatchObject({ gen: 2 });
  });

  it("asks for a credential for its own public key and stores what the key server returns", async () => {
    const { url, dir } = await loggedIn();
    const ks = await fakeKeyserver(url, "issue");
    const got = await download({ dir, target: "lock-1", logger: silentLogger() });
    const publicKey = readKey(dir, "phone-1")?.publicKeyB64;
    expect(ks.requests).toEqual([{ public_key: publicKey, tid: "lock-1", v: 1, id: expect.any(String) }]);
    expect(got).toEqual({
      slot: "slot_a",
      gen: 2,
      tids: ["lock-1", "lock-2"],
      exp: 1_900_086_400,
    });
    const wallet = readWallet(dir, "phone-1");
    expect(wallet).toEqual({
      v: 1,
      term: "phone-1",
      credentials: { slot_a: { token: expect.any(String), tids: ["lock-1", "lock-2"], gen: 2 } },
      last_seq: 0,
    });
    const token = wallet.credentials.slot_a?.token ?? "";
    expect(decodeToken(token, TokenType.credential).payload.holder).toBe(publicKey);
  });

  it("turns an RPC error reply into a SparekeyError with the server's code and message", async () => {
    const { url, dir } = await loggedIn();
    await fakeKeyserver(url, "no_grant");
    const err = await download({ dir, target: "lock-1", logger: silentLogger() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect({ code: (err as SparekeyError).code, message: (err as SparekeyError).message }).toEqual({
      code: "no_grant",
      message: "no key for lock-1",
    });
    expect(readWallet(dir, "phone-1").credentials).toEqual({});
  });

  it("gives up with `timeout` when no reply comes before the deadline", async () => {
    const { url, dir } = await loggedIn();
    const ks = await fakeKeyserver(url, "silent");
    const session = await openSession({ dir, logger: silentLogger() });
    try {
      const err = await session.rpc
        .call("download", { public_key: session.key.publicKeyB64, tid: "lock-1" }, DownloadResult, {
          timeoutMs: 200,
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SparekeyError);
      expect((err as SparekeyError).code).toBe("timeout");
      await waitFor(() => ks.requests.length === 1, "the request to reach the key server");
    } finally {
      await session.close();
    }
  });

  it("refuses a credential issued to another holder and stores nothing", async () => {
    const { url, dir } = await loggedIn();
    const other = generateSigningKey().key;
    const ks: MqttClient = await connectMqtt({
      url,
      clientId: "keyserver",
      username: "keyserver",
      password: "ks-secret",
      reconnectPeriod: 0,
    });
    ks.on("message", (_topic, payload) => {
      const req = JSON.parse(payload.toString()) as { id: string };
      const credential = signToken(
        TokenType.credential,
        {
          v: 1,
          slot: "slot_a",
          gen: 2,
          tids: ["lock-1"],
          mode: "stored",
          holder: other.publicKeyB64,
          term: "phone-1",
          nbf: 0,
          iat: 0,
          jti: "jti_0123456789abcdef",
        },
        issuer,
      );
      const reply = {
        v: 1,
        id: req.id,
        ok: true,
        result: { credential, slot: "slot_a", gen: 2, tids: ["lock-1"] },
      };
      void ks.publishAsync("sparekey/v1/terminals/phone-1/rpc", JSON.stringify(reply), { qos: 1 });
    });
    await ks.subscribeAsync("sparekey/v1/keyserver/rpc/+/download", { qos: 1 });
    await expect(download({ dir, target: "lock-1", logger: silentLogger() })).rejects.toMatchObject({
      code: "terminal_key_mismatch",
    });
    expect(readWallet(dir, "phone-1").credentials).toEqual({});
  });

  it("CLI download reports the slot and status lists the wallet entry", async () => {
    const { url, dir } = await loggedIn();
    await fakeKeyserver(url, "issue");
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: { write: (t: string) => out.push(t) },
      stderr: { write: (t: string) => err.push(t) },
      env: {},
      logger: silentLogger(),
      timeZone: "Europe/Berlin",
    };
    expect(await runTerminal(["download", "--target", "lock-1", "--dir", dir], io)).toBe(0);
    expect(await runTerminal(["status", "--dir", dir], io)).toBe(0);
    expect(err).toEqual([]);
    expect(out[0]).toBe(
      [
        "downloaded slot slot_a gen 2 for lock-1, lock-2 (stored key)",
        "  valid from  2030-03-17 18:46:40 UTC+01:00",
        "  expires     2030-03-18 18:46:40 UTC+01:00",
        "  times in    Europe/Berlin",
        "",
      ].join("\n"),
    );
    expect(out[1]).toContain(
      [
        "  slot slot_a gen 2 targets lock-1, lock-2 (stored key)",
        "    valid from  2030-03-17 18:46:40 UTC+01:00",
        "    expires     2030-03-18 18:46:40 UTC+01:00",
        "    times in    Europe/Berlin",
        "",
      ].join("\n"),
    );
    expect(out.join("")).not.toMatch(/pw-phone|eyJ/);
  });
});
