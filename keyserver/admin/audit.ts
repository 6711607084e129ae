import { type AuditChainReport, verifyAuditChain } from "../audit-chain.js";
import type { AdminContext } from "./context.js";

/**
 * `sparekey admin audit verify`: recompute the audit log's hash chain and name the first row that was
 * changed, removed or moved. A chain that verifies proves no row was edited by someone who did not
 * also recompute every later hash: it has no secret, so it catches tampering with the file, not an
 * attacker who rewrites the whole chain.
 */
export async function auditVerify(ctx: Pick<AdminContext, "store">): Promise<AuditChainReport> {
  const chain = await ctx.store.auditChain();
  return verifyAuditChain(chain.rows, chain.lastSeq);
}
