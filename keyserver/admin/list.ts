import type { AdminContext } from "./context.js";

export const LIST_KINDS = ["users", "terminals", "targets", "slots", "grants"] as const;
export type ListKind = (typeof LIST_KINDS)[number];
export type ListRows = Record<string, unknown>[];

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
    case "slots":
      return (await ctx.store.listSlots()).map((s) => ({ ...s }));
    case "grants":
      return (await ctx.store.listGrants()).map((g) => ({ ...g }));
  }
}
