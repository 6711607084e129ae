import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTarget } from "../../cli/target.js";
import { tempDir } from "../helpers/wait.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } },
    out,
    err,
  };
}

describe("sparekey target", () => {
  it("prints its usage for --help and exits 0", async () => {
    const c = capture();
    expect(await runTarget(["--help"], c.io)).toBe(0);
    expect(c.out.join("")).toContain("usage: sparekey target --config FILE [--log-level LEVEL]");
  });

  it("exits 2 naming --config when it is missing", async () => {
    const c = capture();
    expect(await runTarget([], c.io)).toBe(2);
    expect(c.err).toEqual(["error bad_request: sparekey target: --config is required\n"]);
  });

  it("exits 2 on an unknown flag", async () => {
    const c = capture();
    expect(await runTarget(["--nope"], c.io)).toBe(2);
    expect(c.err.join("")).toContain("--nope");
  });

  it("exits 1 naming the file when the config does not exist", async () => {
    const path = join(tempDir(), "missing.json");
    const c = capture();
    expect(await runTarget(["--config", path], c.io)).toBe(1);
    expect(c.err).toEqual([`error config_invalid: target config ${path}: file not found\n`]);
  });

  it("exits 1 naming the file and the problem when the config is invalid", async () => {
    const path = join(tempDir(), "target.json");
    const config = {
      v: 1,
      tid: "lock/1",
      broker_url: "mqtt://127.0.0.1:9",
      secret: "s".repeat(32),
      prefix: "sparekey/v1",
      issuer_keys: [{ kid: "k".repeat(43), public_key: "p".repeat(43) }],
      period_ms: 1000,
      timeout_periods: 2,
      state_dir: tempDir(),
      keepalive_s: 5,
    };
    writeFileSync(path, JSON.stringify(config));
    const c = capture();
    expect(await runTarget(["--config", path], c.io)).toBe(1);
    expect(c.err.join("")).toBe(
      `error config_invalid: target config ${path}: /tid must match pattern "^[A-Za-z0-9_-]{1,64}$"\n`,
    );
  });

  it("exits 1 naming the file when the config is not JSON", async () => {
    const path = join(tempDir(), "target.json");
    writeFileSync(path, "{ nope");
    const c = capture();
    expect(await runTarget(["--config", path], c.io)).toBe(1);
    expect(c.err).toEqual([`error config_invalid: target config ${path}: not valid JSON\n`]);
  });
});
