import { type ParseArgsConfig, parseArgs } from "node:util";
import { SparekeyError } from "./errors.js";

export type OptionSpec = {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** One line for --help. */
  help: string;
  /** Shown in --help; applied by the caller (kept out of parseArgs so "given" stays visible). */
  default?: string;
};

export interface CommandSpec {
  /** e.g. "sparekey terminal use" */
  name: string;
  summary: string;
  usage?: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments allowed (default none). */
  positionals?: boolean;
}

export type ParsedOptions = Record<string, string | boolean | string[] | undefined>;

export function helpText(spec: CommandSpec): string {
  const lines = [
    `${spec.name} - ${spec.summary}`,
    "",
    `usage: ${spec.usage ?? `${spec.name} [options]`}`,
    "",
    "options:",
  ];
  const entries = Object.entries({
    ...spec.options,
    help: { type: "boolean", short: "h", help: "show this help" } as OptionSpec,
  });
  for (const [name, o] of entries) {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? " VALUE" : ""}`;
    const def = o.default !== undefined ? ` (default: ${o.default})` : "";
    lines.push(`  ${flag.padEnd(30)} ${o.help}${def}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Strict flag parsing: an unknown flag or a missing value is an error that names it. Returns
 * undefined when --help was asked (the help text is already printed).
 */
export function parseCommand(
  spec: CommandSpec,
  argv: readonly string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): { values: ParsedOptions; positionals: string[] } | undefined {
  const options: NonNullable<ParseArgsConfig["options"]> = { help: { type: "boolean", short: "h" } };
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: spec.positionals === true,
    });
  } catch (err) {
    throw new SparekeyError("bad_request", `${spec.name}: ${(err as Error).message}. Try --help.`);
  }
  if (parsed.values.help === true) {
    out(helpText(spec));
    return undefined;
  }
  return { values: parsed.values as ParsedOptions, positionals: parsed.positionals };
}

export function requireString(values: ParsedOptions, name: string, command: string): string {
  const v = values[name];
  if (typeof v !== "string" || v.length === 0)
    throw new SparekeyError("bad_request", `${command}: --${name} is required`);
  return v;
}

export function optionalString(values: ParsedOptions, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

export function optionalInt(
  values: ParsedOptions,
  name: string,
  command: string,
  min: number,
  max: number,
): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^-?[0-9]+$/.test(v))
    throw new SparekeyError("bad_request", `${command}: --${name} must be an integer`);
  const n = Number(v);
  if (n < min || n > max)
    throw new SparekeyError("bad_request", `${command}: --${name} must be between ${min} and ${max}`);
  return n;
}
