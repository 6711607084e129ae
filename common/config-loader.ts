import { readFileSync } from "node:fs";
import type { Static, TObject } from "@sinclair/typebox";
import { configValidator, parseJson } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";

/**
 * Settings come from defaults < config file < environment < flags, then the whole is validated once
 * against the service's Config schema (every problem reported, with its path) and frozen. Unknown keys
 * fail: a typo in a security setting must not silently fall back to a default.
 */
export function loadConfig<S extends TObject>(opts: {
  schema: S;
  what: string;
  defaults: Static<S>;
  file?: string | undefined;
  /** Environment variable name -> config key, e.g. {SPAREKEY_PORT: "port"}. Values are JSON-ish. */
  env?: Record<string, keyof Static<S> & string>;
  flags?: Partial<Record<keyof Static<S> & string, unknown>>;
  environment?: NodeJS.ProcessEnv;
}): Readonly<Static<S>> {
  const merged: Record<string, unknown> = { ...opts.defaults };
  if (opts.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.file, "utf8");
    } catch (err) {
      throw new SparekeyError(
        "config_invalid",
        `${opts.what} ${opts.file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
    const fromFile = parseJson(text);
    if (typeof fromFile !== "object" || fromFile === null || Array.isArray(fromFile)) {
      throw new SparekeyError("config_invalid", `${opts.what} ${opts.file}: not a JSON object`);
    }
    Object.assign(merged, fromFile);
  }
  const environment = opts.environment ?? process.env;
  for (const [name, key] of Object.entries(opts.env ?? {})) {
    const raw = environment[name];
    if (raw !== undefined && raw !== "") merged[key] = coerce(raw, opts.schema, key);
  }
  for (const [key, value] of Object.entries(opts.flags ?? {})) {
    if (value !== undefined)
      merged[key] = typeof value === "string" ? coerce(value, opts.schema, key) : value;
  }
  const config = configValidator(opts.schema, opts.what).parse(merged);
  return Object.freeze(config);
}

/** Strings from env and flags become numbers/booleans where the schema says so; the schema still decides. */
function coerce(raw: string, schema: TObject, key: string): unknown {
  const prop = schema.properties[key] as { type?: string } | undefined;
  if (prop?.type === "integer" || prop?.type === "number")
    return /^-?[0-9]+(\.[0-9]+)?$/.test(raw) ? Number(raw) : raw;
  if (prop?.type === "boolean") return raw === "true" ? true : raw === "false" ? false : raw;
  return raw;
}
