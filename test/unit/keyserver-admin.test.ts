import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { verifyToken } from "../../common/jws.js";
import { signingKeyFromSeed } from "../../common/keys.js";
import { initDataDir } from "../../keyserver/data-dir.js";
import { Issuer } from "../../keyserver/issuer.js";
import { FobFile, TargetConfig } from "../../schemas/config.js";
import { TokenType } from "../../schemas/tokens.js";
import { validator } from "../../schemas/validate.js";
import { tempDir } from "../helpers/wait.js";

function harness(env: Record<string, string> = {}) {
  const dir = tempDir();
  const data = join(dir, "data");
  const made = initDataDir(data);
  let out = "";
  let err = "";
  const io = {
    out: (t: string) => {
      out += t;
    },
    err: (t: string) => {
      err += t;
    },
    env,
  };
  const run = async (...argv: string[]) => {
    out = "";
    err = "";
    await made;
    const code = await runAdmin(["--data", data, ...argv], io);
    return { code, out, err };
  };
  return { dir, data, run };
}

describe("sparekey admin", () => {
  it("target pair writes a valid TargetConfig, mode 0600, with the issuer's public keys", async () => {
    const { dir, data, run } = harness();
    const out = join(dir, "door-1.json");
    const r = await run(
      "target",
      "pair",
      "--tid",
      "door-1",
      "--out",
      out,
      "--broker-url",
      "mqtt://10.0.0.2:18830",
    );
    expect(r).toEqual({ code: 0, out: `target door-1 paired; config written to ${out}\n`, err: "" });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(data).mode & 0o777).toBe(0o700);
    const config = validator(TargetConfig).parse(JSON.parse(readFileSync(out, "utf8")));
    const issuer = Issuer.load(join(data, "issuer.json"));
    expect(config).toEqual({
      v: 1,
      tid: "door-1",
      broker_url: "mqtt://10.0.0.2:18830",
      secret: config.secret,
      prefix: "sparekey/v1",
      issuer_keys: issuer.publicKeys(),
      period_ms: 1000,
      timeout_periods: 2,
      state_dir: config.state_dir,
      keepalive_s: 5,
      // The CLI pairs against the data dir: the gateway's CA goes in with any broker URL.
      ca_pem: readFileSync(join(data, "tls", "ca.pem"), "utf8"),
    });
    expect(config.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await run("list", "targets", "--json")).out).toContain('"tid":"door-1"');
  });

  it("refuses an unknown flag with a message and a non-zero code", async () => {
    const { run } = harness();
    const r = await run("user", "add", "--user", "alice", "--password", "hunter22");
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/^error bad_request: sparekey admin user add: Unknown option '--password'/);
    expect(r.err).not.toContain("hunter22");
  });

  it("prints usage for --help on a command and at the top", async () => {
    const { run } = harness();
    const r = await run("slot", "create", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("sparekey admin slot create - create a key slot");
    expect(r.out).toContain("--target VALUE");
    const top = await run("--help");
    expect(top.code).toBe(0);
    expect(top.out).toContain("write-fob");
  });

  it("reads the password from a file, never a flag, and stores only its hash", async () => {
    const { dir, data, run } = harness();
    const pw = join(dir, "pw");
    writeFileSync(pw, "alice-password\n");
    expect(await run("user", "add", "--user", "alice", "--password-file", pw)).toEqual({
      code: 0,
      out: "user alice added\n",
      err: "",
    });
    expect(readFileSync(join(data, "sparekey.db")).includes("alice-password")).toBe(false);
    const again = await run("user", "add", "--user", "alice", "--password-file", pw);
    expect(again).toEqual({ code: 1, out: "", err: "error already_exists: user alice already exists\n" });
  });

  it("takes the password from SPAREKEY_PASSWORD and refuses when none is given", async () => {
    const withEnv = harness({ SPAREKEY_PASSWORD: "from-the-env" });
    expect((await withEnv.run("user", "add", "--user", "bob")).code).toBe(0);
    const without = harness();
    const r = await without.run("user", "add", "--user", "bob");
    expect(r.code).toBe(2);
    expect(r.err).toBe("error bad_request: give the password with --password-file or SPAREKEY_PASSWORD\n");
  });

  it("write-fob issues the next generation to a new fob and writes a FobFile 0600", async () => {
    const { dir, data, run } = harness();
    await run("target", "pair", "--tid", "door-1", "--out", join(dir, "t.json"));
    await run("slot", "create", "--slot", "car", "--target", "door-1");
    const out = join(dir, "fob.json");
    const r = await run("write-fob", "--slot", "car", "--fob", "fob-7", "--out", out);
    expect(r).toEqual({ code: 0, out: `fob fob-7 written with slot car gen 1 to ${out}\n`, err: "" });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const fob = validator(FobFile).parse(JSON.parse(readFileSync(out, "utf8")));
    const issuer = Issuer.load(join(data, "issuer.json"));
    const cred = verifyToken(fob.credential, TokenType.credential, issuer.keyForKid);
    const holder = signingKeyFromSeed(Buffer.from(fob.seed, "base64url")).publicKeyB64;
    expect(cred.payload).toEqual({
      v: 1,
      slot: "car",
      gen: 1,
      tids: ["door-1"],
      mode: "fob",
      holder,
      term: "fob-7",
      nbf: cred.payload.iat,
      iat: cred.payload.iat,
      jti: cred.payload.jti,
    });
    const slots = JSON.parse((await run("list", "slots", "--json")).out.split("\n")[0] ?? "");
    expect(slots).toMatchObject([{ slot: "car", gen: 1, min_gen: 1, status: "active" }]);
  });

  it("writes the audit log for every admin command and shows it", async () => {
    const { dir, run } = harness({ SPAREKEY_PASSWORD: "pw-123456" });
    await run("user", "add", "--user", "alice");
    await run("terminal", "add", "--serial", "p1", "--user", "alice");
    await run("target", "pair", "--tid", "door-1", "--out", join(dir, "t.json"));
    await run("slot", "create", "--slot", "s1", "--target", "door-1");
    await run("grant", "--slot", "s1", "--user", "alice");
    await run("revoke", "--slot", "s1");
    const r = await run("audit", "--json");
    const ops = (JSON.parse(r.out.split("\n")[0] ?? "") as { op: string; outcome: string }[]).map((a) => [
      a.op,
      a.outcome,
    ]);
    expect(ops).toEqual([
      ["user.add", "ok"],
      ["terminal.add", "ok"],
      ["target.pair", "ok"],
      ["slot.create", "ok"],
      ["grant.add", "ok"],
      ["slot.revoke", "ok"],
    ]);
    expect(r.out).not.toContain("pw-123456");
  });

  it("refuses an unknown command", async () => {
    const { run } = harness();
    const r = await run("frobnicate");
    expect(r.code).toBe(2);
    expect(r.err).toBe('error bad_request: unknown command "frobnicate". Try --help.\n');
  });
});
