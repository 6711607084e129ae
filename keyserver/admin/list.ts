import type { GrantRow } from "../../schemas/keyserver.js";
import type { AdminContext } from "./context.js";

export const LIST_KINDS = ["users", "terminals", "targets", "slots", "grants"] as const;
export type ListKind = (typeof LIST_KINDS)[number];
export type ListRows = Record<string, unknown>[];

/** Who holds a key for a slot: the newest credential each terminal was issued, by its user (none for a fob). */
export interface Holder {
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

/** The records of `kind` as stored (Unix seconds, schedules as data): what `list --json` prints. */
export async function listRecords(ctx: AdminContext, kind: ListKind): Promise<ListRows> {
  switch (kind) {
    case "users": {
      const terminals = await ctx.store.listTerminals();
      return (await ctx.store.listUsers()).map((u) => ({
        ...u,
        devices: terminals.filter((t) => t.user === u.id).map((t) => t.serial),
      }));
    }
    case "terminals": {
      // Last seen is what the store knows: the newest key issued to the terminal.
      const last = new Map<string, number>();
      for (const h of await ctx.store.holdings()) last.set(h.term, Math.max(h.iat, last.get(h.term) ?? 0));
      return (await ctx.store.listTerminals()).map((t) => {
        const issued = last.get(t.serial);
        return { ...t, ...(issued !== undefined ? { last_issued: issued } : {}) };
      });
    }
    case "targets":
      return (await ctx.store.listTargets()).map((t) => ({ ...t }));
    case "slots": {
      const holders = await holdersBySlot(ctx);
      return (await ctx.store.listSlots()).map((s) => ({ ...s, holders: holders.get(s.slot) ?? [] }));
    }
    case "grants": {
      const grants = await ctx.store.listGrants();
      const left = await usesLeft(ctx, grants);
      return grants.map((g) => {
        const known = left.get(g);
        return known ? { ...g, uses_left: known } : { ...g };
      });
    }
  }
}
