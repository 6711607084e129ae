import { SparekeyError } from "../../common/errors.js";
import { formatWindow } from "../../common/schedule.js";
import { assertZone, formatInstant, localZone } from "../../common/time-zone.js";
import type { AdminContext } from "../../keyserver/admin/context.js";
import type { GrantRow } from "../../schemas/keyserver.js";
import { adminCommand, table } from "./common.js";

const LIST_KINDS = ["users", "terminals", "targets", "slots", "grants"] as const;
type ListKind = (typeof LIST_KINDS)[number];
type Rows = Record<string, unknown>[];

/** `90s`, `30m`, `2h`, `1d2h`: the form `--first-use-ttl` reads. */
export function formatDuration(seconds: number): string {
  const parts: [number, string][] = [
    [86_400, "d"],
    [3600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  let rest = seconds;
  let out = "";
  for (const [size, unit] of parts) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || "0s";
}

/** A grant's limits as a person reads them: instants in `zone`, schedules as text. */
export function grantLimits(g: GrantRow, zone: string): string {
  const parts = [
    g.nbf !== null ? `from ${formatInstant(g.nbf, zone)}` : undefined,
    g.exp !== null ? `until ${formatInstant(g.exp, zone)}` : undefined,
    g.max_uses !== null ? `${g.max_uses} use${g.max_uses === 1 ? "" : "s"} per key` : undefined,
    g.schedule !== null ? `${g.schedule.map(formatWindow).join(", ")} (target's zone)` : undefined,
    g.first_use_ttl_s !== null ? `expires ${formatDuration(g.first_use_ttl_s)} after first use` : undefined,
    g.unlock_password ? "unlock asks the password" : undefined,
  ].filter((p): p is string => p !== undefined);
  return parts.length === 0 ? "none" : parts.join("; ");
}

/** Who holds a key for a slot: the newest credential each terminal was issued, by its user (none for a fob). */
interface Holder {
  term: string;
  user?: string;
  gen: number;
  issued: number;
}

async function holdersBySlot(ctx: AdminContext): Promise<Map<string, Holder[]>> {
  const users = new Map((await ctx.store.listTerminals()).map((t) => [t.serial, t.user]));
  const out = new Map<string, Holder[]>();
  for (const h of await ctx.store.holdings()) {
    const user = users.get(h.term);
    const list = out.get(h.slot) ?? [];
    list.push({ term: h.term, ...(user !== undefined ? { user } : {}), gen: h.gen, issued: h.iat });
    out.set(h.slot, list);
  }
  return out;
}

function holderText(h: Holder): string {
  return `${h.user ?? "fob"} (${h.term}, gen ${h.gen})`;
}

/** The access log rows read for uses left: enough for a busy site, bounded for the CLI. */
const USES_SCAN_LIMIT = 100_000;

/**
 * Uses left of a count-limited grant's current key, by target, as the targets last reported them
 * (`auth_established` events of the slot's current generation in the access log). A target counts
 * each key on its own, and one that never reported is missing: "where known".
 */
async function usesLeft(
  ctx: AdminContext,
  grants: readonly GrantRow[],
): Promise<Map<GrantRow, Record<string, number>>> {
  const out = new Map<GrantRow, Record<string, number>>();
  const limited = grants.filter((g) => g.max_uses !== null && g.status === "active");
  if (limited.length === 0) return out;
  const gens = new Map((await ctx.store.listSlots()).map((s) => [s.slot, s.gen]));
  const rows = await ctx.store.listAccessLog({ limit: USES_SCAN_LIMIT });
  for (const g of limited) {
    const left: Record<string, number> = {};
    // Oldest first: the newest report of each target wins.
    for (const r of rows) {
      const e = r.event;
      if (e.type !== "auth_established" || e.slot !== g.slot || r.user !== g.user_id) continue;
      if (e.gen !== gens.get(g.slot) || e.uses_left === undefined) continue;
      left[e.tid] = e.uses_left;
    }
    if (Object.keys(left).length > 0) out.set(g, left);
  }
  return out;
}

/** The records of `kind`: JSON keeps stored values, `human` turns them into text for the table. */
async function listRows(ctx: AdminContext, kind: ListKind, human: string | undefined): Promise<Rows> {
  const when = (s: number | undefined) =>
    s === undefined ? undefined : human !== undefined ? formatInstant(s, human) : s;
  switch (kind) {
    case "users": {
      const terminals = await ctx.store.listTerminals();
      return (await ctx.store.listUsers()).map((u) => ({
        ...u,
        created: when(u.created),
        devices: terminals.filter((t) => t.user === u.id).map((t) => t.serial),
      }));
    }
    case "terminals": {
      // Last seen is what the store knows: the newest key issued to the terminal.
      const last = new Map<string, number>();
      for (const h of await ctx.store.holdings()) last.set(h.term, Math.max(h.iat, last.get(h.term) ?? 0));
      return (await ctx.store.listTerminals()).map((t) => ({
        ...t,
        created: when(t.created),
        last_issued: when(last.get(t.serial)),
        ...(human !== undefined ? { disabled: t.disabled ? "yes" : t.user_disabled ? "user" : "no" } : {}),
      }));
    }
    case "targets":
      return (await ctx.store.listTargets()).map((t) => ({ ...t, created: when(t.created) }));
    case "slots": {
      const holders = await holdersBySlot(ctx);
      return (await ctx.store.listSlots()).map((s) => {
        const held = holders.get(s.slot) ?? [];
        return {
          ...s,
          created: when(s.created),
          holders: human !== undefined ? held.map(holderText).join(", ") : held,
        };
      });
    }
    case "grants": {
      const grants = await ctx.store.listGrants();
      const left = await usesLeft(ctx, grants);
      return grants.map((g) => {
        const known = left.get(g);
        if (human === undefined) return known ? { ...g, uses_left: known } : g;
        const uses = known
          ? Object.entries(known)
              .map(([tid, n]) => `${n} at ${tid}`)
              .join(", ")
          : "";
        return { ...g, created: when(g.created), limits: grantLimits(g, human), uses_left: uses };
      });
    }
  }
}

const COLUMNS: Record<ListKind, string[]> = {
  users: ["id", "disabled", "devices", "created"],
  terminals: ["serial", "kind", "user", "disabled", "last_issued", "public_key", "created"],
  targets: ["tid", "registry_version", "published_version", "created"],
  slots: ["slot", "tids", "gen", "min_gen", "status", "holders", "created"],
  grants: ["user_id", "slot", "mode", "status", "limits", "uses_left", "created"],
};

export const list = adminCommand(
  {
    name: "sparekey admin list",
    summary: "list users, terminals, targets, slots or grants (all when none is named)",
    usage: `sparekey admin list [${LIST_KINDS.join("|")}] [--tz ZONE] [--json]`,
    options: {
      json: { type: "boolean", help: "print JSON (stored values: Unix seconds, schedules as data)" },
      tz: { type: "string", help: "zone the table shows instants in", defaultText: "this system's zone" },
    },
    positionals: true,
  },
  async (ctx, p, io) => {
    if (p.positionals.length > 1) throw new SparekeyError("bad_request", "list: name at most one kind");
    const wanted = p.positionals[0];
    const kinds = wanted === undefined ? [...LIST_KINDS] : LIST_KINDS.filter((k) => k === wanted);
    if (kinds.length === 0)
      throw new SparekeyError("bad_request", `list: kind must be one of ${LIST_KINDS.join(", ")}`);
    const human = p.values.json ? undefined : assertZone(p.values.tz ?? localZone());
    const result: Record<string, Rows> = {};
    for (const kind of kinds) result[kind] = await listRows(ctx, kind, human);
    if (p.values.json) return JSON.stringify(wanted === undefined ? result : (result[wanted] ?? []));
    for (const kind of kinds) {
      if (kinds.length > 1) io.stdout.write(`${kind}:\n`);
      io.stdout.write(table(result[kind] ?? [], COLUMNS[kind]));
    }
    return `${kinds.map((k) => `${result[k]?.length ?? 0} ${k}`).join(", ")}`;
  },
);
