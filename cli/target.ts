import { readFileSync } from "node:fs";
import { readJsonFile } from "../common/atomic-file.js";
import { type CliIo, cliIo, command, EXIT, runCli } from "../common/cli.js";
import { SparekeyError } from "../common/errors.js";
import { acquireInstanceLock } from "../common/instance-lock.js";
import { createLogger } from "../common/log.js";
import { assertTimeZone } from "../common/time-zone.js";
import { TargetConfig } from "../schemas/config.js";
import { Target } from "../target/target.js";
import { untilAborted } from "./signals.js";

function loadConfig(path: string): TargetConfig {
  const config = readJsonFile(path, TargetConfig, "target config");
  if (!config) throw new SparekeyError("config_invalid", `target config ${path}: file not found`);
  if (config.time_zone !== undefined) assertTimeZone(config.time_zone);
  return config;
}

/**
 * TEST ONLY: names a file holding a wall-clock offset in ms that the target adds to Date.now, read at
 * every look at the clock, so a test can step the clock of a whole target process. Never set it in a
 * deployment: it is an environment variable, not config, and the target warns when it is set.
 */
export const TEST_WALL_OFFSET_ENV = "SPAREKEY_TEST_WALL_OFFSET_FILE";

function testWallClock(file: string): () => number {
  let offset = 0;
  return () => {
    try {
      const value = Number(readFileSync(file, "utf8").trim());
      // A half-written file keeps the last good offset.
      if (Number.isSafeInteger(value)) offset = value;
    } catch {
      // The file may be replaced while read: keep the last good offset.
    }
    return Date.now() + offset;
  };
}

/** `sparekey target`: runs until the entry point's signal, then stops cleanly. */
export const TARGET_COMMAND = command(
  {
    name: "sparekey target",
    summary: "run a target (the lock): rotate its challenge, verify key frames, publish its state",
    usage: "sparekey target --config FILE [--log-level LEVEL]",
    logLevel: "info",
    options: {
      config: {
        type: "string",
        help: "the target's config file (written by the key server's admin pair-target)",
      },
    },
  },
  async (p, io) => {
    const config = loadConfig(p.required("config"));
    const logger = createLogger("target", { level: p.logLevel });
    const offsetFile = io.env[TEST_WALL_OFFSET_ENV];
    if (offsetFile)
      logger.warn({ file: offsetFile }, `${TEST_WALL_OFFSET_ENV} set: the wall clock is a test's`);
    // Per target: several targets may share one state dir (each has its own state file in it).
    const lock = acquireInstanceLock(config.state_dir, {
      what: `target ${config.tid}'s state dir`,
      file: `${config.tid}.lock`,
      createDir: true,
      logger,
    });
    try {
      const target = new Target({
        config,
        logger,
        ...(offsetFile ? { now: testWallClock(offsetFile) } : {}),
      });
      await target.start();
      logger.info("target running");
      await untilAborted(io.signal);
      logger.info({ signal: String(io.signal.reason) }, "stopping");
      await target.stop();
      return EXIT.ok;
    } finally {
      lock.release();
    }
  },
);

export function runTarget(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  return runCli(TARGET_COMMAND, argv, cliIo(io));
}
