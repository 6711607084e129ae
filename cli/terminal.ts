import { readFileSync } from "node:fs";
import { type CommandSpec, optionalInt, optionalString, parseCommand, requireString } from "../common/cli.js";
import { SparekeyError } from "../common/errors.js";
import { decodeToken } from "../common/jws.js";
import { createLogger, type Logger } from "../common/log.js";
import { DEFAULT_BROKER_URL } from "../common/mqtt.js";
import { TokenType } from "../schemas/tokens.js";
import { DEFAULT_PREFIX } from "../schemas/topics.js";
import { describeCredential, localTimeZone } from "../terminal/credential-info.js";
import { download } from "../terminal/download.js";
import { readKey, readProfile, readWallet, resolveTerminalDir, terminalPaths } from "../terminal/files.js";
import { login } from "../terminal/login.js";
import { StatusLine, type StatusOutput } from "../terminal/status-line.js";
import { UNLOCK_TIMEOUT_MS, unlock } from "../terminal/unlock.js";
import { startFobUse, startRelayUse, startUse, type UseHandle } from "../terminal/use.js";

export interface TerminalIo {
  stdout?: StatusOutput;
  stderr?: { write(text: string): unknown };
  env?: Record<string, string | undefined>;
  /** Ends `use` as SIGINT/SIGTERM would; when absent, `use` listens for those signals itself. */
  signal?: AbortSignal;
  logger?: Logger;
  /** IANA zone times are shown in (default: this machine's). */
  timeZone?: string;
}

/**
 * Exit codes: 0 done, 1 failed, 2 bad usage, 3 the target went out of reach, 4 refused (`use`: the
 * key's uses ran out; `unlock`: the target refused), 5 `unlock` timed out.
 */
export const EXIT_OUT_OF_REACH = 3;
export const EXIT_USES_EXHAUSTED = 4;
export const EXIT_REFUSED = 4;
export const EXIT_TIMED_OUT = 5;

const dirOption = {
  type: "string",
  help: "terminal dir",
  default: "$SPAREKEY_TERMINAL_DIR or ~/.sparekey/terminal",
} as const;

const SPECS = {
  login: {
    name: "sparekey terminal login",
    summary: "check the credentials with the broker, make the key pair, write the profile",
    usage:
      "sparekey terminal login --broker URL --serial S --user U [--password-file F] [--prefix P] [--dir D]",
    options: {
      broker: { type: "string", help: `broker URL, e.g. ${DEFAULT_BROKER_URL}` },
      serial: { type: "string", help: "this phone's serial (its terminal id)" },
      user: { type: "string", help: "user id" },
      "password-file": { type: "string", help: "file holding the password", default: "$SPAREKEY_PASSWORD" },
      prefix: { type: "string", help: "topic prefix", default: DEFAULT_PREFIX },
      dir: dirOption,
    },
  },
  download: {
    name: "sparekey terminal download",
    summary: "download a credential for a target from the key server into the wallet",
    usage: "sparekey terminal download --target T [--slot S] [--dir D]",
    options: {
      target: { type: "string", help: "target id" },
      slot: { type: "string", help: "key slot (default: the server picks)" },
      dir: dirOption,
    },
  },
  use: {
    name: "sparekey terminal use",
    summary: "send key frames to a target until interrupted or out of reach",
    usage:
      "sparekey terminal use --target T [--slot S] [--relay | --ephemeral] [--keepalive S] [--dir D] [--max-seconds N]\n" +
      "       sparekey terminal use --fob FILE --target T [--keepalive S]",
    options: {
      target: { type: "string", help: "target id" },
      slot: { type: "string", help: "key slot (default: the highest generation that opens the target)" },
      relay: { type: "boolean", help: "relay key: the key server signs each frame; nothing is stored" },
      ephemeral: {
        type: "boolean",
        help: "delete the stored credential when the target goes out of reach (not on Ctrl-C)",
      },
      fob: { type: "string", help: "act as the fob described by this file (from `admin write-fob`)" },
      keepalive: {
        type: "string",
        help: "MQTT keepalive in seconds: how soon a dead link is noticed",
        default: "5",
      },
      "max-seconds": { type: "string", help: "stop after this many seconds" },
      dir: dirOption,
    },
  },
  unlock: {
    name: "sparekey terminal unlock",
    summary: "one-time remote unlock of a target through the key server; waits for the outcome",
    usage: "sparekey terminal unlock --target T [--password-file F] [--duration-ms N] [--dir D]",
    options: {
      target: { type: "string", help: "target id" },
      "password-file": {
        type: "string",
        help: "your password, when the key needs it again for a remote unlock",
        default: "$SPAREKEY_PASSWORD, asked for only when needed",
      },
      "duration-ms": { type: "string", help: "how long the target stays open (default: the key server's)" },
      dir: dirOption,
    },
  },
  status: {
    name: "sparekey terminal status",
    summary: "show the profile (without the password), the key id and the wallet",
    options: { dir: dirOption },
  },
} satisfies Record<string, CommandSpec>;

type Sub = keyof typeof SPECS;

function topHelp(): string {
  const lines = [
    "sparekey terminal - the phone (or a fob) as a spare key",
    "",
    `usage: sparekey terminal <${Object.keys(SPECS).join("|")}> [options]`,
    "",
    "commands:",
  ];
  for (const [name, spec] of Object.entries(SPECS)) lines.push(`  ${name.padEnd(10)} ${spec.summary}`);
  lines.push("", "`sparekey terminal COMMAND --help` for its options.");
  return `${lines.join("\n")}\n`;
}

function isSub(name: string | undefined): name is Sub {
  return name !== undefined && Object.hasOwn(SPECS, name);
}

interface Ctx {
  out: StatusOutput;
  err: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  logger: Logger;
  signal: AbortSignal | undefined;
  timeZone: string;
}

function readPassword(values: Record<string, unknown>, env: Ctx["env"]): string {
  const file = values["password-file"];
  if (typeof file === "string") {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new SparekeyError("bad_request", `cannot read the password file ${file} (${code})`);
    }
    const password = text.replace(/\r?\n$/, "");
    if (password.length === 0) throw new SparekeyError("bad_request", `the password file ${file} is empty`);
    return password;
  }
  const fromEnv = env.SPAREKEY_PASSWORD;
  if (fromEnv) return fromEnv;
  // Never a flag value: it would show in `ps` and shell history.
  throw new SparekeyError("bad_request", "give the password with --password-file or SPAREKEY_PASSWORD");
}

async function cmdLogin(argv: string[], ctx: Ctx): Promise<number> {
  const parsed = parseCommand(SPECS.login, argv, (t) => ctx.out.write(t));
  if (!parsed) return 0;
  const v = parsed.values;
  const cmd = SPECS.login.name;
  const dir = resolveTerminalDir(optionalString(v, "dir"), ctx.env);
  const result = await login({
    dir,
    brokerUrl: requireString(v, "broker", cmd),
    serial: requireString(v, "serial", cmd),
    user: requireString(v, "user", cmd),
    password: readPassword(v, ctx.env),
    prefix: optionalString(v, "prefix") ?? DEFAULT_PREFIX,
    logger: ctx.logger,
  });
  ctx.out.write(
    `logged in: terminal ${result.term}, user ${result.user}, broker ${result.brokerUrl}\n` +
      `key ${result.kid} (${result.keyCreated ? "new" : "existing"}), profile in ${dir}\n`,
  );
  return 0;
}

async function cmdDownload(argv: string[], ctx: Ctx): Promise<number> {
  const parsed = parseCommand(SPECS.download, argv, (t) => ctx.out.write(t));
  if (!parsed) return 0;
  const v = parsed.values;
  const target = requireString(v, "target", SPECS.download.name);
  const slot = optionalString(v, "slot");
  const dir = resolveTerminalDir(optionalString(v, "dir"), ctx.env);
  const got = await download({ dir, target, ...(slot !== undefined ? { slot } : {}), logger: ctx.logger });
  // The credential just stored, read back for its limits (the download result names only the slot).
  const entry = readWallet(dir, readProfile(dir).term).credentials[got.slot];
  const payload = entry ? decodeToken(entry.token, TokenType.credential).payload : undefined;
  const lines = [
    `downloaded slot ${got.slot} gen ${got.gen} for ${got.tids.join(", ")} (${payload?.mode ?? "stored"} key)`,
    ...(payload ? describeCredential(payload, ctx.timeZone).map((l) => `  ${l}`) : []),
  ];
  ctx.out.write(`${lines.join("\n")}\n`);
  return 0;
}

/** Resolves when the caller's signal fires or SIGINT/SIGTERM arrives; `dispose` removes the handlers. */
function interruption(signal: AbortSignal | undefined): { interrupted: Promise<void>; dispose(): void } {
  let resolveInterrupted: () => void = () => {};
  const interrupted = new Promise<void>((resolve) => {
    resolveInterrupted = resolve;
  });
  const handler = () => resolveInterrupted();
  if (signal) {
    if (signal.aborted) handler();
    else signal.addEventListener("abort", handler, { once: true });
    return { interrupted, dispose: () => signal.removeEventListener("abort", handler) };
  }
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return {
    interrupted,
    dispose() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

async function cmdUse(argv: string[], ctx: Ctx): Promise<number> {
  const parsed = parseCommand(SPECS.use, argv, (t) => ctx.out.write(t));
  if (!parsed) return 0;
  const v = parsed.values;
  const cmd = SPECS.use.name;
  const tid = requireString(v, "target", cmd);
  const fob = optionalString(v, "fob");
  const slot = optionalString(v, "slot");
  const maxSeconds = optionalInt(v, "max-seconds", cmd, 1, 86_400);
  const keepalive = optionalInt(v, "keepalive", cmd, 1, 3600) ?? 5;
  const relay = v.relay === true;
  const ephemeral = v.ephemeral === true;
  if (fob !== undefined && (slot !== undefined || v.dir !== undefined || relay || ephemeral)) {
    throw new SparekeyError(
      "bad_request",
      `${cmd}: --fob takes no --slot, --dir, --relay or --ephemeral (the fob file holds everything)`,
    );
  }
  if (relay && ephemeral) {
    throw new SparekeyError(
      "bad_request",
      `${cmd}: --ephemeral is for stored keys; a relay key stores nothing`,
    );
  }
  const status = new StatusLine({ out: ctx.out });
  const common = {
    tid,
    logger: ctx.logger,
    keepalive,
    onChange: (s: Parameters<StatusLine["update"]>[0]) => status.update(s),
  };
  const dirOpts = () => ({
    dir: resolveTerminalDir(optionalString(v, "dir"), ctx.env),
    ...(slot !== undefined ? { slot } : {}),
  });
  let deleted: string | undefined;
  const handle: UseHandle =
    fob !== undefined
      ? await startFobUse({ ...common, fobFile: fob })
      : relay
        ? await startRelayUse({ ...common, ...dirOpts() })
        : await startUse({
            ...common,
            ...dirOpts(),
            ephemeral,
            onDeleted: (s) => {
              deleted = s;
            },
          });
  const stop = interruption(ctx.signal);
  const ticker = setInterval(() => status.refresh(), 500);
  let maxTimer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    if (maxSeconds !== undefined) maxTimer = setTimeout(resolve, maxSeconds * 1000);
  });
  try {
    const outcome = await Promise.race([handle.ended, stop.interrupted, timedOut]);
    await handle.close();
    status.end();
    if (outcome === "out_of_reach") {
      ctx.err.write(`target ${tid} out of reach: no fresh challenge for 2 periods; frames stopped\n`);
      if (deleted !== undefined) ctx.err.write(`ephemeral key: credential for slot ${deleted} deleted\n`);
      return EXIT_OUT_OF_REACH;
    }
    if (outcome === "uses_exhausted") {
      ctx.err.write(`target ${tid}: the key's last use is spent (uses_left 0); frames stopped\n`);
      return EXIT_USES_EXHAUSTED;
    }
    return 0;
  } finally {
    clearInterval(ticker);
    clearTimeout(maxTimer);
    stop.dispose();
  }
}

async function cmdUnlock(argv: string[], ctx: Ctx): Promise<number> {
  const parsed = parseCommand(SPECS.unlock, argv, (t) => ctx.out.write(t));
  if (!parsed) return 0;
  const v = parsed.values;
  const cmd = SPECS.unlock.name;
  const tid = requireString(v, "target", cmd);
  const durationMs = optionalInt(v, "duration-ms", cmd, 100, 600_000);
  const dir = resolveTerminalDir(optionalString(v, "dir"), ctx.env);
  const password = v["password-file"] !== undefined ? readPassword(v, ctx.env) : undefined;
  let result: Awaited<ReturnType<typeof unlock>>;
  try {
    result = await unlock({
      dir,
      tid,
      logger: ctx.logger,
      ...(password !== undefined ? { password } : {}),
      askPassword: () => ctx.env.SPAREKEY_PASSWORD || undefined,
      ...(durationMs !== undefined ? { durationMs } : {}),
    });
  } catch (err) {
    if (err instanceof SparekeyError && err.code === "password_required") {
      ctx.err.write(
        `error password_required: ${err.message}; give it with --password-file F or SPAREKEY_PASSWORD\n`,
      );
      return 1;
    }
    if (err instanceof SparekeyError && err.code === "timeout") {
      ctx.out.write("timed_out\n");
      ctx.err.write(`no answer from the key server within ${UNLOCK_TIMEOUT_MS / 1000} s\n`);
      return EXIT_TIMED_OUT;
    }
    throw err;
  }
  switch (result.outcome) {
    case "applied":
      ctx.out.write("applied\n");
      return 0;
    case "refused":
      ctx.out.write(`refused: ${result.reason ?? "no reason given"}\n`);
      return EXIT_REFUSED;
    case "timed_out":
      ctx.out.write("timed_out\n");
      return EXIT_TIMED_OUT;
  }
}

function cmdStatus(argv: string[], ctx: Ctx): number {
  const parsed = parseCommand(SPECS.status, argv, (t) => ctx.out.write(t));
  if (!parsed) return 0;
  const dir = resolveTerminalDir(optionalString(parsed.values, "dir"), ctx.env);
  const profile = readProfile(dir);
  const key = readKey(dir, profile.term);
  const wallet = readWallet(dir, profile.term);
  const lines = [
    `dir       ${dir}`,
    `terminal  ${profile.term}`,
    `user      ${profile.user}`,
    `broker    ${profile.broker_url}`,
    `prefix    ${profile.prefix}`,
    key ? `key       ${key.kid} (public ${key.publicKeyB64})` : `key       none (${terminalPaths(dir).key})`,
    `last seq  ${wallet.last_seq}`,
    `wallet    ${Object.keys(wallet.credentials).length} credential(s)`,
  ];
  for (const [slot, entry] of Object.entries(wallet.credentials)) {
    const head = `  slot ${slot} gen ${entry.gen} targets ${entry.tids.join(", ")}`;
    try {
      const { payload } = decodeToken(entry.token, TokenType.credential);
      lines.push(`${head} (${payload.mode} key)`);
      lines.push(...describeCredential(payload, ctx.timeZone).map((l) => `    ${l}`));
    } catch {
      lines.push(`${head} (unreadable credential)`);
    }
  }
  ctx.out.write(`${lines.join("\n")}\n`);
  return 0;
}

/** `sparekey terminal ...`; returns the exit code. */
export async function runTerminal(argv: string[], io: TerminalIo = {}): Promise<number> {
  const ctx: Ctx = {
    out: io.stdout ?? process.stdout,
    err: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    logger: io.logger ?? createLogger("terminal", { level: process.env.SPAREKEY_LOG_LEVEL ?? "warn" }),
    signal: io.signal,
    timeZone: io.timeZone ?? localTimeZone(),
  };
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    ctx.out.write(topHelp());
    return sub === undefined ? 2 : 0;
  }
  try {
    if (!isSub(sub))
      throw new SparekeyError(
        "bad_request",
        sub.startsWith("-")
          ? `unknown option '${sub}': give a command first. Try --help.`
          : `unknown command \`terminal ${sub}\`. Try --help.`,
      );
    switch (sub) {
      case "login":
        return await cmdLogin(rest, ctx);
      case "download":
        return await cmdDownload(rest, ctx);
      case "use":
        return await cmdUse(rest, ctx);
      case "unlock":
        return await cmdUnlock(rest, ctx);
      case "status":
        return cmdStatus(rest, ctx);
    }
  } catch (err) {
    if (err instanceof SparekeyError) {
      ctx.err.write(`error ${err.code}: ${err.message}\n`);
      return err.code === "bad_request" ? 2 : 1;
    }
    ctx.logger.error({ err }, "unexpected failure");
    ctx.err.write(`error internal_error: ${err instanceof Error ? err.message : "unexpected failure"}\n`);
    return 1;
  }
}
