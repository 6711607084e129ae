import { describe, expect, it } from "vitest";
import { createLogger } from "../../common/log.js";
import { LOG_LEVELS, usePretty } from "../../common/log-settings.js";
import { initDataDir } from "../../keyserver/data-dir.js";
import { spawnSparekey } from "../helpers/spawn-cli.js";
import { tempDir } from "../helpers/wait.js";

const LEVELS = LOG_LEVELS.join(", ");

/** Every command, with flags it would otherwise accept: the log settings are checked before any runs. */
const COMMANDS: ReadonlyArray<{ name: string; argv: string[] }> = [
  { name: "sparekey gateway", argv: ["gateway", "--port", "0", "--data", "DATA"] },
  { name: "sparekey demo", argv: ["demo"] },
  { name: "sparekey target", argv: ["target", "--config", "DATA/target.json"] },
  { name: "sparekey terminal use", argv: ["terminal", "use", "--dir", "DATA"] },
  { name: "sparekey terminal login", argv: ["terminal", "login", "--dir", "DATA"] },
  { name: "sparekey admin list", argv: ["admin", "list", "users", "--data", "DATA"] },
];

function argvIn(dir: string, argv: readonly string[]): string[] {
  return argv.map((a) => a.replace("DATA", dir));
}

describe("the log settings of every command", { timeout: 90_000 }, () => {
  it("refuses an unknown SPAREKEY_LOG_LEVEL with config_invalid and exit 1, no stack trace, nothing started", async () => {
    const dir = tempDir();
    const runs = await Promise.all(
      COMMANDS.map((c) => spawnSparekey(argvIn(dir, c.argv), { env: { SPAREKEY_LOG_LEVEL: "loud" } })),
    );
    const line = `error config_invalid: SPAREKEY_LOG_LEVEL must be one of ${LEVELS}\n`;
    expect(runs.map((r) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr }))).toEqual(
      COMMANDS.map(() => ({ code: 1, stdout: "", stderr: line })),
    );
  });

  it("refuses an unknown --log-level as bad usage with exit 2, naming the command", async () => {
    const dir = tempDir();
    const runs = await Promise.all(
      COMMANDS.map((c) => spawnSparekey([...argvIn(dir, c.argv), "--log-level", "LOUD"])),
    );
    expect(runs.map((r) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr }))).toEqual(
      COMMANDS.map((c) => ({
        code: 2,
        stdout: "",
        stderr: `error bad_request: ${c.name}: --log-level must be one of ${LEVELS}\n`,
      })),
    );
  });

  it("lets a valid --log-level win over a bad SPAREKEY_LOG_LEVEL, and refuses a bad SPAREKEY_LOG_FORMAT", async () => {
    const dir = tempDir();
    const [flagWins, badFormat] = await Promise.all([
      spawnSparekey(["target", "--config", `${dir}/none.json`, "--log-level", "warn"], {
        env: { SPAREKEY_LOG_LEVEL: "loud" },
      }),
      spawnSparekey(["gateway", "--check-config"], { env: { SPAREKEY_LOG_FORMAT: "xml" } }),
    ]);
    expect({ code: flagWins.code, stderr: flagWins.stderr }).toEqual({
      code: 1,
      stderr: `error config_invalid: target config ${dir}/none.json: file not found\n`,
    });
    expect({ code: badFormat.code, stdout: badFormat.stdout, stderr: badFormat.stderr }).toEqual({
      code: 1,
      stdout: "",
      stderr: "error config_invalid: SPAREKEY_LOG_FORMAT must be one of auto, json, pretty\n",
    });
  });

  it("logs JSON lines on stderr when it is not a TTY (as under systemd), also with the format left to auto", async () => {
    const data = tempDir();
    await initDataDir(data);
    let sent = false;
    const listeners = ["--host", "127.0.0.1", "--port", "0", "--wss-port", "0", "--plain-port", "0"];
    const run = await spawnSparekey(["gateway", ...listeners, "--data", data], {
      env: { SPAREKEY_LOG_LEVEL: "info" },
      onStdout(soFar, proc) {
        if (!sent && soFar.includes("Ctrl-C to stop")) {
          sent = true;
          proc.kill("SIGTERM");
        }
      },
    });
    expect(run.code).toBe(0);
    const lines = run.stderr.split("\n").filter((l) => l !== "");
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      expect(entry).toMatchObject({ name: "sparekey", level: expect.any(Number), msg: expect.any(String) });
    }
  });
});

describe("createLogger", () => {
  it("throws config_invalid for a bad SPAREKEY_LOG_LEVEL or SPAREKEY_LOG_FORMAT instead of pino's error", () => {
    expect(() => createLogger("t", { env: { SPAREKEY_LOG_LEVEL: "verbose" } })).toThrow(
      expect.objectContaining({
        code: "config_invalid",
        message: `SPAREKEY_LOG_LEVEL must be one of ${LEVELS}`,
      }),
    );
    expect(() => createLogger("t", { env: { SPAREKEY_LOG_FORMAT: "text" } })).toThrow(
      expect.objectContaining({ code: "config_invalid" }),
    );
    expect(
      createLogger("t", { env: { SPAREKEY_LOG_LEVEL: "debug", SPAREKEY_LOG_FORMAT: "json" } }).level,
    ).toBe("debug");
  });

  it("prints pretty lines only when asked or, on auto, on a TTY", () => {
    expect([
      usePretty("auto", true),
      usePretty("auto", false),
      usePretty("json", true),
      usePretty("json", false),
      usePretty("pretty", true),
      usePretty("pretty", false),
    ]).toEqual([true, false, false, false, true, true]);
  });
});
