import { createHash } from "node:crypto";
import type { AuditChainRow } from "../schemas/keyserver.js";

/** The hash the first row chains from. */
export const AUDIT_GENESIS = "0".repeat(64);

/** The fields a row's hash covers, in a fixed order (`detail` is the stored JSON text as written). */
export type AuditContent = Omit<AuditChainRow, "hash">;

/**
 * SHA-256 over the previous row's hash and this row's canonical content. `seq` is covered too, so a
 * row moved to another position no longer matches.
 */
export function auditHash(prev: string, row: AuditContent): string {
  const canonical = JSON.stringify([
    row.seq,
    row.ts,
    row.actor,
    row.op,
    row.subject,
    row.outcome,
    row.detail,
  ]);
  return createHash("sha256").update(prev).update("\n").update(canonical).digest("hex");
}

export type AuditBreak = "changed" | "missing" | "out_of_order";

export interface AuditChainReport {
  ok: boolean;
  /** How many rows were checked. */
  rows: number;
  /** The first row that does not fit the chain, and how; absent when `ok`. */
  firstBad?: { seq: number; reason: AuditBreak };
}

/**
 * Recompute the chain over `rows` (in the order the store keeps them) and name the first row that
 * breaks it: one whose content or hash was changed, whose predecessor was removed or moved (its hash
 * no longer chains), or whose seq does not rise. `lastSeq`, the store's own count of the newest row,
 * catches rows removed from the end, which leave no broken link behind.
 */
export function verifyAuditChain(rows: readonly AuditChainRow[], lastSeq?: number): AuditChainReport {
  const bad = (seq: number, reason: AuditBreak): AuditChainReport => ({
    ok: false,
    rows: rows.length,
    firstBad: { seq, reason },
  });
  let prev = AUDIT_GENESIS;
  let prevSeq = 0;
  for (const [i, row] of rows.entries()) {
    if (row.seq <= prevSeq) return bad(row.seq, "out_of_order");
    if (auditHash(prev, row) !== row.hash) {
      if (row.seq === prevSeq + 1) return bad(row.seq, "changed");
      // A gap before a row that no longer chains: the rows in between were moved further on, or removed.
      const moved = rows.slice(i + 1).some((r) => r.seq > prevSeq && r.seq < row.seq);
      return moved ? bad(row.seq, "out_of_order") : bad(prevSeq + 1, "missing");
    }
    prev = row.hash;
    prevSeq = row.seq;
  }
  if (lastSeq !== undefined && lastSeq > prevSeq) return bad(prevSeq + 1, "missing");
  return { ok: true, rows: rows.length };
}
