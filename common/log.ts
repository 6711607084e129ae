import { type Logger, pino } from "pino";
import { SparekeyError } from "./errors.js";
import {
  isLogLevel,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  logFormatFromEnv,
  logLevelFromEnv,
  usePretty,
} from "./log-settings.js";

export type { Logger };

/** Paths whose values never reach a log line, whatever a caller passes. */
const REDACT = [
  "password",
  "secret",
  "seed",
  "token",
  "credential",
  "cred",
  "*.password",
  "*.secret",
  "*.seed",
  "*.token",
  "*.credential",
  "*.cred",
];

export interface LogOptions {
  /** Default: SPAREKEY_LOG_LEVEL, else info. */
  level?: LogLevel;
  /** Default: SPAREKEY_LOG_FORMAT (json|pretty|auto), else auto: pretty only when the stream is a TTY. */
  format?: LogFormat;
  /** Write to stderr (default) so stdout stays for command output. */
  destination?: 1 | 2;
  /** Read for the defaults above (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Throws config_invalid (never pino's own stack trace) for an unknown level or format. */
export function createLogger(name: string, options: LogOptions = {}): Logger {
  const env = options.env ?? process.env;
  const level = options.level ?? logLevelFromEnv(env, "info");
  // A caller typed `level` but may have passed a string through a cast: check at runtime too.
  if (!isLogLevel(level))
    throw new SparekeyError("config_invalid", `log level must be one of ${LOG_LEVELS.join(", ")}`);
  const fd = options.destination ?? 2;
  const isTTY = Boolean(fd === 2 ? process.stderr.isTTY : process.stdout.isTTY);
  const pretty = usePretty(options.format ?? logFormatFromEnv(env), isTTY);
  if (pretty) {
    return pino({
      name,
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      transport: {
        target: "pino-pretty",
        options: { destination: fd, colorize: isTTY, ignore: "pid,hostname" },
      },
    });
  }
  return pino(
    { name, level, redact: { paths: REDACT, censor: "[redacted]" } },
    pino.destination({ fd, sync: false }),
  );
}

/** For tests and libraries used quietly. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
