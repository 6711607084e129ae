import { SparekeyError } from "../../common/errors.js";
import { type GrantCandidate, phoneUserOf } from "../grants.js";
import type { OpContext } from "./context.js";

/** The user behind an enabled phone terminal: only phones relay and unlock (a fob holds its own key). */
export async function phoneUser(ctx: OpContext, term: string): Promise<string> {
  return phoneUserOf(await ctx.store.getTerminal(term));
}

/** Every grant of `user` with its slot. */
export async function grantCandidates(ctx: OpContext, user: string): Promise<GrantCandidate[]> {
  const out: GrantCandidate[] = [];
  for (const grant of await ctx.store.grantsOf(user)) {
    const slot = await ctx.store.getSlot(grant.slot);
    if (slot) out.push({ grant, slot });
  }
  return out;
}

/** The zone the target reads schedules in; a target that is not paired has no grant to offer. */
export async function targetZone(ctx: OpContext, tid: string): Promise<string> {
  const target = await ctx.store.targetZone(tid);
  if (!target) throw new SparekeyError("no_grant", `no grant covers target ${tid}`);
  return target.time_zone ?? "UTC";
}

/** Audit a refusal, then let it travel on as the RPC error. */
export async function auditRefusal(
  ctx: OpContext,
  entry: { actor: string; op: string; subject: string; detail?: Record<string, unknown> },
  err: unknown,
): Promise<never> {
  if (err instanceof SparekeyError) await ctx.store.recordAudit({ ...entry, outcome: err.code });
  throw err;
}
