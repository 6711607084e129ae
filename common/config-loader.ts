import { readFileSync } from "node:fs";
import type { Static, TObject, TSchema } from "@sinclair/typebox";
import { configValidator, parseJson } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";

/** A config that does not validate: every problem, one `<path> <message>` each, printed one per line. */
export class ConfigError extends SparekeyError {
  constructor(
    readonly what: string,
    readonly issues: readonly string[],
  ) {
    super("config_invalid", `${what}: ${issues.join("; ")}`);
  }
}

/**
 * Settings come from defaults < config file < environment < flags, then the whole is validated once
 * against the service's Config schema (every problem reported, with its path and where the value came
 * from) and frozen. Unknown keys fail: a typo in a security setting must not silently fall back to a
 * default. Reads the file and nothing else: no directory is opened or created, no port is bound.
 */
export function loadConfig<S extends TObject>(opts: {
  schema: S;
  what: string;
  defaults: Static<S>;
  file?: string | undefined;
  /** Environment variable name -> config key, e.g. {SPAREKEY_PORT: "port"}. Values are JSON-ish. */
  env?: Record<string, keyof Static<S> & string>;
  flags?: Partial<Record<keyof Static<S> & string, unknown>>;
  /** Config key -> its flag, to name it in a problem (default: `--` and the key with dashes). */
  flagNames?: Partial<Record<keyof Static<S> & string, string>>;
  environment?: Readonly<Record<string, string | undefined>>;
}): Readonly<Static<S>> {
  const merged: Record<string, unknown> = { ...opts.defaults };
  const origin = new Map<string, string>();
  if (opts.file !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(opts.file, opts.what))) {
      merged[key] = value;
      origin.set(key, opts.file);
    }
  }
  const environment = opts.environment ?? process.env;
  for (const [name, key] of Object.entries(opts.env ?? {})) {
    const raw = environment[name];
    if (raw !== undefined && raw !== "") {
      merged[key] = coerce(raw, opts.schema, key);
      origin.set(key, name);
    }
  }
  const flagNames: Partial<Record<string, string>> = opts.flagNames ?? {};
  for (const [key, value] of Object.entries(opts.flags ?? {})) {
    if (value === undefined) continue;
    merged[key] = typeof value === "string" ? coerce(value, opts.schema, key) : value;
    origin.set(key, flagNames[key] ?? `--${key.replaceAll("_", "-")}`);
  }
  const issues: string[] = [];
  const known: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(merged)) {
    if (Object.hasOwn(opts.schema.properties, key)) known[key] = value;
    else issues.push(`/${key} is not a known key${from(origin, key)}`);
  }
  const validator = configValidator(opts.schema, opts.what);
  if (!validator.is(known)) {
    for (const issue of validator.lastIssues()) issues.push(`${issue}${from(origin, topKey(issue))}`);
  }
  if (issues.length > 0) throw new ConfigError(opts.what, issues);
  return Object.freeze(known as Static<S>);
}

function readConfigFile(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new SparekeyError(
      "config_invalid",
      `${what} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const value = parseJson(text);
  if (value === undefined)
    throw new SparekeyError("config_invalid", `${what} ${file}: not valid JSON (or a key repeated)`);
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new SparekeyError("config_invalid", `${what} ${file}: not a JSON object`);
  return value as Record<string, unknown>;
}

/** The top-level key an issue's path starts with (`/port must be …` → `port`). */
function topKey(issue: string): string {
  return /^\/([^/\s]+)/.exec(issue)?.[1] ?? "";
}

function from(origin: ReadonlyMap<string, string>, key: string): string {
  const where = origin.get(key);
  return where === undefined ? "" : ` (from ${where})`;
}

/** Strings from env and flags become numbers/booleans where the schema says so; the schema still decides. */
function coerce(raw: string, schema: TObject, key: string): unknown {
  const prop = schema.properties[key] as { type?: string } | undefined;
  if (prop?.type === "integer" || prop?.type === "number")
    return /^-?[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : raw;
  if (prop?.type === "boolean") return raw === "true" ? true : raw === "false" ? false : raw;
  return raw;
}

/** Key names whose values are secret even when their schema does not say so. */
const SECRET_NAME = /(^|_)(password|passphrase|secret|seed|token)$/;

/**
 * The config with every secret value replaced, for printing: a property is secret when its schema is
 * marked `writeOnly: true` (JSON Schema's own word for "accepted, never shown back") or its name ends in
 * password, passphrase, secret, seed or token.
 */
export function redactConfig<S extends TObject>(
  schema: S,
  config: Readonly<Static<S>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config as Record<string, unknown>)) {
    const prop = schema.properties[key] as (TSchema & { writeOnly?: boolean }) | undefined;
    out[key] = prop?.writeOnly === true || SECRET_NAME.test(key) ? "[redacted]" : value;
  }
  return out;
}
