import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { SparekeyError } from "../../common/errors.js";
import { silentLogger } from "../../common/log.js";
import { terminalPaths } from "../../terminal/files.js";
import { login } from "../../terminal/login.js";
import { startTestBroker, tableAuthenticator } from "../helpers/broker.js";
import { tempDir } from "../helpers/wait.js";

const PASSWORD = "correct horse battery staple";

async function broker() {
  return startTestBroker(tableAuthenticator({ "phone-1": { role: "terminal", password: PASSWORD } }));
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
    });
    const keyFile = JSON.parse(readFileSync(paths.key, "utf8")) as { seed: string };
    expect(readFileSync(paths.profile, "utf8")).not.toContain(keyFile.seed);
    expect(result).toEqual({
      term: "phone-1",
      user: "alice",
      brokerUrl: b.url,
      prefix: "sparekey/v1",
      kid: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
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
});
