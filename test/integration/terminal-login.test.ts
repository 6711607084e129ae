import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunningBroker } from "../../broker/server.js";
import { runTerminal } from "../../cli/terminal.js";
import { SparekeyError } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { terminalPaths } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { openSession } from "../../terminal/session.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { makeIssuer } from "../helpers/issuer.js";
import { retainKeyserverStatus } from "../helpers/retained.js";
import { tempDir } from "../helpers/wait.js";

const PASSWORD = "correct horse battery staple";
/** The issuer of the key server these brokers stand in for. */
const ISSUER = makeIssuer();

/** An aedes broker with a key server's retained status on it (the login's key server check). */
async function broker() {
  const b = await startTestBroker(
    tableAuthenticator({ "phone-1": { role: "terminal", password: PASSWORD } }),
  );
  await retainKeyserverStatus(b, ISSUER.key.kid);
  return b;
}

/** Every topic the broker holds a retained message for. */
async function retainedTopics(b: RunningBroker): Promise<string[]> {
  const topics: string[] = [];
  // aedes's types leave out its persistence; its retained store is what a new subscriber would get.
  const store = (
    b.aedes as unknown as {
      persistence: { createRetainedStream(p: string): AsyncIterable<{ topic: string }> };
    }
  ).persistence;
  for await (const packet of store.createRetainedStream("#")) topics.push(packet.topic);
  return topics.sort();
}

function sink(): { write(t: string): void; text(): string } {
  const parts: string[] = [];
  return { write: (t: string) => parts.push(t), text: () => parts.join("") };
}

describe("terminal login", () => {
  it("refuses a wrong password with auth_failed and writes nothing", async () => {
    const b = await broker();
    const dir = tempDir();
    const err = await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: "wrong",
      logger: silentLogger(),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("auth_failed");
    expect((err as SparekeyError).message).not.toContain("wrong");
    expect(existsSync(terminalPaths(dir).profile)).toBe(false);
    expect(existsSync(terminalPaths(dir).key)).toBe(false);
  });

  it("writes a 0600 profile without key material and makes the key pair on success", async () => {
    const b = await broker();
    const dir = join(tempDir(), "terminal");
    const result = await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
    });
    const paths = terminalPaths(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(paths.profile).mode & 0o777).toBe(0o600);
    expect(statSync(paths.key).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(paths.profile, "utf8"))).toEqual({
      v: 1,
      term: "phone-1",
      user: "alice",
      password: PASSWORD,
      broker_url: b.url,
      prefix: "sparekey/v1",
      keyserver_kid: ISSUER.key.kid,
    });
    const keyFile = JSON.parse(readFileSync(paths.key, "utf8")) as { seed: string };
    expect(readFileSync(paths.profile, "utf8")).not.toContain(keyFile.seed);
    expect(result).toEqual({
      term: "phone-1",
      user: "alice",
      brokerUrl: b.url,
      prefix: "sparekey/v1",
      kid: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      keyserverKid: ISSUER.key.kid,
      publicKey: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      keyCreated: true,
    });
    const again = await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
    });
    expect(again).toEqual({ ...result, keyCreated: false });
  });

  it("CLI login prints `error auth_failed` and exits non-zero without a profile on a refused CONNECT", async () => {
    const b = await broker();
    const dir = tempDir();
    const pwFile = join(tempDir(), "pw");
    writeFileSync(pwFile, "not-the-password\n");
    const out = sink();
    const err = sink();
    const code = await runTerminal(
      [
        "login",
        "--broker",
        b.url,
        "--serial",
        "phone-1",
        "--user",
        "alice",
        "--password-file",
        pwFile,
        "--dir",
        dir,
      ],
      { stdout: out, stderr: err, env: {}, logger: silentLogger() },
    );
    expect(code).not.toBe(0);
    expect(err.text()).toMatch(/^error auth_failed: /);
    expect(err.text() + out.text()).not.toContain("not-the-password");
    expect(existsSync(terminalPaths(dir).profile)).toBe(false);
  });

  it("CLI login takes the password from SPAREKEY_PASSWORD and never prints it", async () => {
    const b = await broker();
    const dir = tempDir();
    const out = sink();
    const err = sink();
    const code = await runTerminal(
      ["login", "--broker", b.url, "--serial", "phone-1", "--user", "alice", "--dir", dir],
      { stdout: out, stderr: err, env: { SPAREKEY_PASSWORD: PASSWORD }, logger: silentLogger() },
    );
    expect({ code, err: err.text() }).toEqual({ code: 0, err: "" });
    expect(out.text()).toContain("logged in: terminal phone-1, user alice");
    expect(out.text()).not.toContain(PASSWORD);

    const status = sink();
    expect(await runTerminal(["status", "--dir", dir], { stdout: status, stderr: err, env: {} })).toBe(0);
    expect(status.text()).toContain("terminal  phone-1");
    expect(status.text()).not.toContain(PASSWORD);
  });

  it("CLI login refuses a password given nowhere and a --password flag", async () => {
    const err = sink();
    const io = { stdout: sink(), stderr: err, env: {}, logger: silentLogger() };
    const base = ["login", "--broker", "mqtt://127.0.0.1:9", "--serial", "phone-1", "--user", "alice"];
    expect(await runTerminal([...base, "--dir", tempDir()], io)).toBe(2);
    expect(await runTerminal([...base, "--password", "x"], io)).toBe(2);
    expect(err.text().split("\n").filter(Boolean)).toEqual([
      "error bad_request: give the password with --password-file or SPAREKEY_PASSWORD",
      expect.stringMatching(/^error bad_request: sparekey terminal login: Unknown option '--password'/),
    ]);
  });

  it("refuses a broker without a key server status with not_sparekey and writes nothing", async () => {
    const b = await startTestBroker(
      tableAuthenticator({ "phone-1": { role: "terminal", password: PASSWORD } }),
    );
    const dir = tempDir();
    const err = await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
      keyserverCheckMs: 200,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("not_sparekey");
    expect((err as SparekeyError).message).toContain(b.url);
    expect(existsSync(terminalPaths(dir).profile)).toBe(false);
    expect(await retainedTopics(b)).toEqual([]);
  });

  it("later connections refuse a key server with a kid other than the pinned one (keyserver_unknown) and publish no status", async () => {
    const b = await broker();
    const dir = tempDir();
    await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
    });
    const session = await openSession({ dir, logger: silentLogger() });
    await session.close();
    expect(await retainedTopics(b)).toEqual([
      "sparekey/v1/keyserver/status",
      "sparekey/v1/terminals/phone-1/status",
    ]);

    // Another key server (another issuer) now answers at that address.
    const b2 = await broker();
    const other = makeIssuer();
    await retainKeyserverStatus(b2, other.key.kid);
    const profile = JSON.parse(readFileSync(terminalPaths(dir).profile, "utf8")) as Record<string, unknown>;
    writeFileSync(terminalPaths(dir).profile, JSON.stringify({ ...profile, broker_url: b2.url }));
    const err = await openSession({ dir, logger: silentLogger() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SparekeyError);
    expect((err as SparekeyError).code).toBe("keyserver_unknown");
    expect((err as SparekeyError).message).toContain(other.key.kid);
    expect(await retainedTopics(b2)).toEqual(["sparekey/v1/keyserver/status"]);
  });

  // Regression: after an issuer rotation the status named only the new active key, so every phone pinned
  // to the previous one was refused (keyserver_unknown) and could not even download a new-key credential.
  it("recognises its key server across a rotation: the status lists every key still trusted", async () => {
    const b = await broker();
    const dir = tempDir();
    await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
    });
    const rotated = makeIssuer();
    await retainKeyserverStatus(b, rotated.key.kid, { kids: [rotated.key.kid, ISSUER.key.kid], epoch: 2 });
    const session = await openSession({ dir, logger: silentLogger() });
    await session.close();
    await retainKeyserverStatus(b, rotated.key.kid, { kids: [rotated.key.kid], epoch: 3 });
    const err = await openSession({ dir, logger: silentLogger() }).catch((e: unknown) => e);
    expect((err as SparekeyError).code).toBe("keyserver_unknown");
  });

  it("a retained offline status of the pinned key server still counts", async () => {
    const b = await broker();
    const dir = tempDir();
    await login({
      dir,
      brokerUrl: b.url,
      serial: "phone-1",
      user: "alice",
      password: PASSWORD,
      logger: silentLogger(),
    });
    await retainKeyserverStatus(b, ISSUER.key.kid, { state: "offline", epoch: 7 });
    const session = await openSession({ dir, logger: silentLogger() });
    await session.close();
  });
});
