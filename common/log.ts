import { type Logger, pino } from "pino";

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
  level?: string;
  /** Human-friendly lines (pino-pretty) instead of JSON; defaults to "stdout is a TTY". */
  pretty?: boolean;
  /** Write to stderr (default) so stdout stays for command output. */
  destination?: 1 | 2;
}

export function createLogger(name: string, options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.SPAREKEY_LOG_LEVEL ?? "info";
  const fd = options.destination ?? 2;
  const pretty = options.pretty ?? Boolean(fd === 2 ? process.stderr.isTTY : process.stdout.isTTY);
  if (pretty) {
    return pino({
      name,
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      transport: {
        target: "pino-pretty",
        options: { destination: fd, colorize: true, ignore: "pid,hostname" },
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
