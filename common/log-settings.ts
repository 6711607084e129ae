import { SparekeyError } from "./errors.js";

/**
 * What the logger may be told, checked before pino sees it: pino throws a bare Error with a stack for
 * an unknown level, which would reach the operator as a crash instead of a config error. No pino import
 * here, so `sparekey --help` stays light.
 */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `auto`: pretty lines on a TTY, JSON otherwise (systemd, docker, a pipe), so the journal gets JSON. */
export const LOG_FORMATS = ["auto", "json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const LOG_LEVEL_ENV = "SPAREKEY_LOG_LEVEL";
export const LOG_FORMAT_ENV = "SPAREKEY_LOG_FORMAT";

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

function oneOf<T extends string>(all: readonly T[], value: string, source: string): T {
  if ((all as readonly string[]).includes(value)) return value as T;
  throw new SparekeyError("config_invalid", `${source} must be one of ${all.join(", ")}`);
}

/** The level from the environment (empty counts as unset), or `fallback`; anything else is config_invalid. */
export function logLevelFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  fallback: LogLevel,
): LogLevel {
  const raw = env[LOG_LEVEL_ENV];
  return raw === undefined || raw === "" ? fallback : oneOf(LOG_LEVELS, raw, LOG_LEVEL_ENV);
}

export function logFormatFromEnv(env: Readonly<Record<string, string | undefined>>): LogFormat {
  const raw = env[LOG_FORMAT_ENV];
  return raw === undefined || raw === "" ? "auto" : oneOf(LOG_FORMATS, raw, LOG_FORMAT_ENV);
}

/** Whether to print pretty lines: only when asked, or on `auto` when the log stream is a terminal. */
export function usePretty(format: LogFormat, isTTY: boolean): boolean {
  return format === "pretty" || (format === "auto" && isTTY);
}
