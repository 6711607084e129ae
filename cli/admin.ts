import { readFileSync } from "node:fs";
import {
  type CommandSpec,
  helpText,
  optionalInt,
  optionalString,
  type ParsedOptions,
  parseCommand,
  requireString,
} from "../common/cli.js";
import { isSparekeyError, SparekeyError } from "../common/errors.js";
import { DEFAULT_BROKER_URL } from "../common/mqtt.js";
import { parseDuration, parseInstant, parseSchedule } from "../common/time-input.js";
import { formatWall, localZone } from "../common/time-zone.js";
import { addGrant, addTerminal, addUser, revokeGrant } from "../keyserver/admin/accounts.js";
import type { AdminContext } from "../keyserver/admin/context.js";
import { writeFob } from "../keyserver/admin/fob.js";
import {
  createSlot,
  pairTarget,
  revocationStatus,
  revokeFleet,
  revokeSlot,
} from "../keyserver/admin/targets.js";
import { openKeyServerState } from "../keyserver/state.js";
import type { GrantMode } from "../schemas/keyserver.js";

export interface AdminIo {
  out(text: string): void;
  err(text: string): void;
  env?: Record<string, string | undefined>;
}

const defaultIo: AdminIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const LIST_KINDS = ["users", "terminals", "targets", "slots", "grants"] as const;
type ListKind = (typeof LIST_KINDS)[number];

interface Command {
  spec: CommandSpec;
  run(ctx: AdminContext, values: ParsedOptions, positionals: string[], io: AdminIo): Promise<string>;
}

const brokerUrlOption = {
  type: "string",
  help: "broker URL written to the file",
  default: DEFAULT_BROKER_URL,
} as const;
const prefixOption = {
  type: "string",
  help: "topic prefix written to the file",
  default: "sparekey/v1",
} as const;

function readPassword(values: ParsedOptions, io: AdminIo, command: string): string {
  const file = optionalString(values, "password-file");
  if (file !== undefined) {
    try {
      return readFileSync(file, "utf8").replace(/\r?\n$/, "");
    } catch (err) {
      throw new SparekeyError(
        "bad_request",
        `${command}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }
  const env = (io.env ?? process.env).SPAREKEY_PASSWORD;
  if (env !== undefined && env.length > 0) return env;
  throw new SparekeyError("bad_request", `${command}: give --password-file FILE or set SPAREKEY_PASSWORD`);
}

function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cell = (v: unknown) =>
    v === undefined || v === null ? "-" : typeof v === "string" ? v : JSON.stringify(v);
  const grid = [columns, ...rows.map((r) => columns.map((c) => cell(r[c])))];
  const widths = columns.map((_, i) => Math.max(...grid.map((line) => (line[i] ?? "").length)));
  return `${grid
    .map((line) =>
      line
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

async function listRows(ctx: AdminContext, kind: ListKind): Promise<Record<string, unknown>[]> {
  switch (kind) {
    case "users":
      return ctx.store.listUsers();
    case "terminals":
      return ctx.store.listTerminals().then((rows) => rows.map((r) => ({ ...r })));
    case "targets":
      return ctx.store.listTargets();
    case "slots":
      return ctx.store.listSlots().then((rows) => rows.map((r) => ({ ...r })));
    case "grants":
      return ctx.store.listGrants();
  }
}

const COLUMNS: Record<ListKind, string[]> = {
  users: ["id", "created"],
  terminals: ["serial", "kind", "user", "public_key", "disabled", "created"],
  targets: ["tid", "registry_version", "published_version", "created"],
  slots: ["slot", "tids", "gen", "min_gen", "status", "created"],
  grants: [
    "user_id",
    "slot",
    "mode",
    "status",
    "nbf",
    "exp",
    "max_uses",
    "schedule",
    "first_use_ttl_s",
    "unlock_password",
    "created",
  ],
};

const COMMANDS: Record<string, Command> = {
  "user add": {
    spec: {
      name: "sparekey admin user add",
      summary: "add a user; the password comes from --password-file or SPAREKEY_PASSWORD, never a flag",
      options: {
        user: { type: "string", help: "user id" },
        "password-file": { type: "string", help: "file holding the password (one line)" },
      },
    },
    async run(ctx, values, _p, io) {
      const user = requireString(values, "user", "user add");
      await addUser(ctx, { user, password: readPassword(values, io, "user add") });
      return `user ${user} added`;
    },
  },
  "terminal add": {
    spec: {
      name: "sparekey admin terminal add",
      summary: "register a phone (its serial) for a user",
      options: {
        serial: { type: "string", help: "the terminal's serial (its MQTT client id)" },
        user: { type: "string", help: "user id" },
      },
    },
    async run(ctx, values) {
      const serial = requireString(values, "serial", "terminal add");
      const user = requireString(values, "user", "terminal add");
      await addTerminal(ctx, { serial, user });
      return `terminal ${serial} added for user ${user}`;
    },
  },
  "target pair": {
    spec: {
      name: "sparekey admin target pair",
      summary: "pair a target and write its config file (mode 0600, holds its secret)",
      options: {
        tid: { type: "string", help: "target id" },
        out: { type: "string", help: "config file to write (must not exist)" },
        "broker-url": brokerUrlOption,
        prefix: prefixOption,
        "state-dir": { type: "string", help: "the target's state dir", default: "./sparekey-target-TID" },
        "period-ms": { type: "string", help: "challenge period in ms", default: "1000" },
        "time-zone": { type: "string", help: "IANA zone the target reads schedules in", default: "UTC" },
      },
    },
    async run(ctx, values) {
      const tid = requireString(values, "tid", "target pair");
      const out = requireString(values, "out", "target pair");
      const brokerUrl = optionalString(values, "broker-url");
      const prefix = optionalString(values, "prefix");
      const stateDir = optionalString(values, "state-dir");
      const periodMs = optionalInt(values, "period-ms", "target pair", 50, 60_000);
      const timeZone = optionalString(values, "time-zone");
      await pairTarget(ctx, {
        ...(timeZone !== undefined ? { timeZone } : {}),
        tid,
        out,
        ...(brokerUrl !== undefined ? { brokerUrl } : {}),
        ...(prefix !== undefined ? { prefix } : {}),
        ...(stateDir !== undefined ? { stateDir } : {}),
        ...(periodMs !== undefined ? { periodMs } : {}),
      });
      return `target ${tid} paired; config written to ${out}`;
    },
  },
  "slot create": {
    spec: {
      name: "sparekey admin slot create",
      summary: "create a key slot paired with one or more targets",
      options: {
        slot: { type: "string", help: "slot id" },
        target: { type: "string", multiple: true, help: "target id (repeat for several)" },
      },
    },
    async run(ctx, values) {
      const slot = requireString(values, "slot", "slot create");
      const targets = values.target;
      if (!Array.isArray(targets) || targets.length === 0)
        throw new SparekeyError("bad_request", "slot create: --target is required");
      const created = await createSlot(ctx, { slot, tids: targets });
      return `slot ${slot} created for ${created.tids.join(", ")}`;
    },
  },
  grant: {
    spec: {
      name: "sparekey admin grant",
      summary: "let a user download (stored) or relay keys of a slot, with optional limits",
      options: {
        slot: { type: "string", help: "slot id" },
        user: { type: "string", help: "user id" },
        mode: { type: "string", help: "stored or relay", default: "stored" },
        nbf: {
          type: "string",
          help: "not before: ISO 8601 (2006-01-26T21:00, +01:00 or Z), YYYYMMDDhhmmss, or @UNIX",
        },
        exp: { type: "string", help: "expires: same forms as --nbf" },
        tz: { type: "string", help: "zone for dates without one (default: this system's zone)" },
        "max-uses": { type: "string", help: "uses allowed per credential" },
        schedule: {
          type: "string",
          multiple: true,
          help: 'weekly window in the target\'s zone, e.g. "Mon-Fri 08:00-18:00" (repeatable)',
        },
        "first-use-ttl": { type: "string", help: "key expires this long after first use: 90s, 30m, 2h" },
        "unlock-password": { type: "boolean", help: "remote unlock needs the user's password again" },
      },
    },
    async run(ctx, values, _p, io) {
      const slot = requireString(values, "slot", "grant");
      const user = requireString(values, "user", "grant");
      const mode = optionalString(values, "mode") ?? "stored";
      if (mode !== "stored" && mode !== "relay")
        throw new SparekeyError("bad_request", "grant: --mode must be stored or relay");
      const zone = optionalString(values, "tz") ?? localZone();
      const instant = (name: "nbf" | "exp") => {
        const text = optionalString(values, name);
        if (text === undefined) return undefined;
        const at = parseInstant(text, zone);
        // Always say which zone the value was read in and what instant it became.
        io.out(`${name}: ${text} read in ${at.zone} = ${at.utc} (${formatWall(at.unix, zone)})\n`);
        return at.unix;
      };
      const nbf = instant("nbf");
      const exp = instant("exp");
      const maxUses = optionalInt(values, "max-uses", "grant", 1, 1_000_000);
      const schedules = values.schedule;
      const schedule = Array.isArray(schedules) ? schedules.map((w) => parseSchedule(w)) : undefined;
      const ttl = optionalString(values, "first-use-ttl");
      const firstUseTtl = ttl !== undefined ? parseDuration(ttl) : undefined;
      await addGrant(ctx, {
        slot,
        user,
        mode,
        ...(nbf !== undefined ? { nbf } : {}),
        ...(exp !== undefined ? { exp } : {}),
        ...(maxUses !== undefined ? { max_uses: maxUses } : {}),
        ...(schedule !== undefined && schedule.length > 0 ? { schedule } : {}),
        ...(firstUseTtl !== undefined ? { first_use_ttl_s: firstUseTtl } : {}),
        ...(values["unlock-password"] === true ? { unlock_password: true } : {}),
      });
      return `user ${user} granted ${mode} on slot ${slot}`;
    },
  },
  "revoke-grant": {
    spec: {
      name: "sparekey admin revoke-grant",
      summary: "revoke a user's grant on a slot (relay and unlock stop at once)",
      options: {
        slot: { type: "string", help: "slot id" },
        user: { type: "string", help: "user id" },
        mode: { type: "string", help: "stored or relay", default: "stored" },
      },
    },
    async run(ctx, values) {
      const slot = requireString(values, "slot", "revoke-grant");
      const user = requireString(values, "user", "revoke-grant");
      const mode = optionalString(values, "mode") ?? "stored";
      if (mode !== "stored" && mode !== "relay")
        throw new SparekeyError("bad_request", "revoke-grant: --mode must be stored or relay");
      await revokeGrant(ctx, { slot, user, mode: mode satisfies GrantMode });
      return `${mode} grant of user ${user} on slot ${slot} revoked`;
    },
  },
  "write-fob": {
    spec: {
      name: "sparekey admin write-fob",
      summary: "write the slot's key to a replacement fob (the next generation: older holders stop working)",
      options: {
        slot: { type: "string", help: "slot id" },
        fob: { type: "string", help: "the fob's id (its MQTT client id)" },
        out: { type: "string", help: "fob file to write (must not exist)" },
        "broker-url": brokerUrlOption,
        prefix: prefixOption,
      },
    },
    async run(ctx, values) {
      const slot = requireString(values, "slot", "write-fob");
      const fob = requireString(values, "fob", "write-fob");
      const out = requireString(values, "out", "write-fob");
      const brokerUrl = optionalString(values, "broker-url");
      const prefix = optionalString(values, "prefix");
      const r = await writeFob(ctx, {
        slot,
        fob,
        out,
        ...(brokerUrl !== undefined ? { brokerUrl } : {}),
        ...(prefix !== undefined ? { prefix } : {}),
      });
      return `fob ${fob} written with slot ${slot} gen ${r.gen} to ${out}`;
    },
  },
  revoke: {
    spec: {
      name: "sparekey admin revoke",
      summary: "revoke a slot, or only its generations below N; --fleet also publishes it to every target",
      options: {
        slot: { type: "string", help: "slot id" },
        "below-gen": { type: "string", help: "revoke generations below N (raise the floor)" },
        fleet: { type: "boolean", help: "add it to the signed fleet/revocations list" },
      },
    },
    async run(ctx, values) {
      const slot = requireString(values, "slot", "revoke");
      const belowGen = optionalInt(values, "below-gen", "revoke", 1, 2_147_483_647);
      const input = { slot, ...(belowGen !== undefined ? { belowGen } : {}) };
      const what = belowGen === undefined ? `slot ${slot}` : `slot ${slot} generations below ${belowGen}`;
      if (values.fleet === true) {
        const r = await revokeFleet(ctx, input);
        return `${what} revoked fleet-wide (revocations version ${r.version})`;
      }
      const s = await revokeSlot(ctx, input);
      return belowGen === undefined
        ? `slot ${slot} revoked`
        : `slot ${slot} generations below ${s.min_gen} revoked`;
    },
  },
  revocations: {
    spec: {
      name: "sparekey admin revocations",
      summary: "show which targets confirmed the latest fleet revocation list",
      options: { json: { type: "boolean", help: "print JSON" } },
    },
    async run(ctx, values, _p, io) {
      const status = await revocationStatus(ctx);
      if (values.json === true) return JSON.stringify(status);
      io.out(
        `fleet revocations version ${status.version}${status.version > 0 && !status.published ? " (not yet published)" : ""}\n`,
      );
      io.out(table(status.targets, ["tid", "status", "confirmed_version"]));
      const confirmed = status.targets.filter((t) => t.status === "confirmed").length;
      return `${confirmed} confirmed, ${status.targets.length - confirmed} pending`;
    },
  },
  list: {
    spec: {
      name: "sparekey admin list",
      summary: "list users, terminals, targets, slots or grants (all when none is named)",
      usage: `sparekey admin list [${LIST_KINDS.join("|")}] [--json]`,
      options: { json: { type: "boolean", help: "print JSON" } },
      positionals: true,
    },
    async run(ctx, values, positionals, io) {
      if (positionals.length > 1) throw new SparekeyError("bad_request", "list: name at most one kind");
      const wanted = positionals[0];
      const kinds = wanted === undefined ? [...LIST_KINDS] : LIST_KINDS.filter((k) => k === wanted);
      if (kinds.length === 0)
        throw new SparekeyError("bad_request", `list: kind must be one of ${LIST_KINDS.join(", ")}`);
      const result: Record<string, Record<string, unknown>[]> = {};
      for (const kind of kinds) result[kind] = await listRows(ctx, kind);
      if (values.json === true) return JSON.stringify(wanted === undefined ? result : (result[wanted] ?? []));
      for (const kind of kinds) {
        if (kinds.length > 1) io.out(`${kind}:\n`);
        io.out(table(result[kind] ?? [], COLUMNS[kind]));
      }
      return `${kinds.map((k) => `${result[k]?.length ?? 0} ${k}`).join(", ")}`;
    },
  },
  audit: {
    spec: {
      name: "sparekey admin audit",
      summary: "show the most recent audit log entries, oldest first",
      options: {
        limit: { type: "string", help: "how many entries", default: "50" },
        json: { type: "boolean", help: "print JSON" },
      },
    },
    async run(ctx, values, _p, io) {
      const limit = optionalInt(values, "limit", "audit", 1, 100_000) ?? 50;
      const rows = await ctx.store.listAudit(limit);
      if (values.json === true) return JSON.stringify(rows);
      // The table is for people: ISO UTC instead of Unix ms (--json keeps the stored value).
      const readable = rows.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() }));
      io.out(table(readable, ["seq", "ts", "actor", "op", "subject", "outcome", "detail"]));
      return `${rows.length} audit entries`;
    },
  },
};

/** Subcommands that take a second word ("user add"). */
const GROUPS = new Set(["user", "terminal", "target", "slot"]);

const topSpec: CommandSpec = {
  name: "sparekey admin",
  summary: "manage users, terminals, targets, slots and keys in a key server's data dir",
  usage: `sparekey admin [--data DIR] <command> [options]\n\ncommands:\n${Object.keys(COMMANDS)
    .map((c) => `  ${c.padEnd(14)} ${COMMANDS[c]?.spec.summary ?? ""}`)
    .join("\n")}`,
  options: {
    data: {
      type: "string",
      help: "the key server's data dir (env SPAREKEY_DATA)",
      default: "./sparekey-data",
    },
  },
};

/** Leading global flags end at the first word that is not a flag or a flag's value. */
function splitGlobal(argv: readonly string[]): { global: string[]; rest: string[] } {
  let i = 0;
  while (i < argv.length) {
    const a = argv[i] ?? "";
    if (!a.startsWith("-")) break;
    i += a === "--data" ? 2 : 1;
  }
  return { global: argv.slice(0, i), rest: argv.slice(i) };
}

/** `sparekey admin …`: prints one result line, or `error <code>: <message>` on stderr; returns the exit code. */
export async function runAdmin(argv: string[], io: AdminIo = defaultIo): Promise<number> {
  try {
    const { global, rest } = splitGlobal(argv);
    const top = parseCommand(topSpec, global, io.out);
    if (!top) return 0;
    const [first, second] = rest;
    if (first === undefined) {
      io.out(helpText(topSpec));
      return 2;
    }
    if (GROUPS.has(first) && (second === "--help" || second === "-h")) {
      io.out(helpText(topSpec));
      return 0;
    }
    const name = GROUPS.has(first) ? `${first} ${second ?? ""}` : first;
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!command) throw new SparekeyError("bad_request", `unknown command "${name.trim()}". Try --help.`);
    const parsed = parseCommand(command.spec, rest.slice(GROUPS.has(first) ? 2 : 1), io.out);
    if (!parsed) return 0;
    const dataDir =
      optionalString(top.values, "data") ?? (io.env ?? process.env).SPAREKEY_DATA ?? "./sparekey-data";
    const state = openKeyServerState(dataDir);
    try {
      const ctx: AdminContext = { store: state.store, issuer: state.issuer, actor: "admin", now: Date.now };
      const line = await command.run(ctx, parsed.values, parsed.positionals, io);
      io.out(`${line}\n`);
      return 0;
    } finally {
      await state.close();
    }
  } catch (err) {
    if (isSparekeyError(err)) {
      io.err(`error ${err.code}: ${err.message}\n`);
      return err.code === "bad_request" ? 2 : 1;
    }
    io.err(`error internal_error: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
