import { readJsonFile } from "../common/atomic-file.js";
import { type CommandSpec, optionalString, parseCommand, requireString } from "../common/cli.js";
import { isSparekeyError, SparekeyError } from "../common/errors.js";
import { createLogger } from "../common/log.js";
import { assertTimeZone } from "../common/time-zone.js";
import { TargetConfig } from "../schemas/config.js";
import { Target } from "../target/target.js";

export const TARGET_COMMAND: CommandSpec = {
  name: "sparekey target",
  summary: "run a target (the lock): rotate its challenge, verify key frames, publish its state",
  usage: "sparekey target --config FILE [--log-level LEVEL]",
  options: {
    config: {
      type: "string",
      help: "the target's config file (written by the key server's admin pair-target)",
    },
    "log-level": { type: "string", help: "trace, debug, info, warn or error", default: "info" },
  },
};

const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

export interface TargetCliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

const processIo: TargetCliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

function loadConfig(path: string): TargetConfig {
  const config = readJsonFile(path, TargetConfig, "target config");
  if (!config) throw new SparekeyError("config_invalid", `target config ${path}: file not found`);
  if (config.time_zone !== undefined) assertTimeZone(config.time_zone);
  return config;
}

/** `sparekey target`: runs until SIGINT or SIGTERM, then stops cleanly and returns 0. */
export async function runTarget(argv: string[], io: TargetCliIo = processIo): Promise<number> {
  let target: Target;
  let logger: ReturnType<typeof createLogger>;
  try {
    const parsed = parseCommand(TARGET_COMMAND, argv, io.out);
    if (!parsed) return 0;
    const path = requireString(parsed.values, "config", TARGET_COMMAND.name);
    const level = optionalString(parsed.values, "log-level") ?? "info";
    if (!LOG_LEVELS.has(level)) {
      throw new SparekeyError(
        "bad_request",
        `${TARGET_COMMAND.name}: --log-level must be one of trace..error`,
      );
    }
    const config = loadConfig(path);
    logger = createLogger("target", { level });
    target = new Target({ config, logger });
  } catch (err) {
    if (!isSparekeyError(err)) throw err;
    io.err(`error: ${err.message}\n`);
    return err.code === "bad_request" ? 2 : 1;
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    // One handler at the entry point: stop once, whatever signal comes first.
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      logger.info({ signal }, "stopping");
      target.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, "stop failed");
          resolve(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    target.start().then(
      () => logger.info("target running"),
      (err: unknown) => {
        logger.error({ err }, "target failed to start");
        if (isSparekeyError(err)) io.err(`error: ${err.message}\n`);
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        resolve(1);
      },
    );
  });
}
