import { describe, expect, it } from "vitest";
import { AUDIT_GENESIS, auditHash, verifyAuditChain } from "../../keyserver/audit-chain.js";
import type { AuditChainRow } from "../../schemas/keyserver.js";

/** A valid chain of `n` rows, as a store writes it. */
function chain(n: number): AuditChainRow[] {
  const out: AuditChainRow[] = [];
  let prev = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const content = {
      seq,
      ts: 1_700_000_000_000 + seq,
      actor: "admin",
      op: "slot.revoke",
      subject: `s${seq}`,
      outcome: "ok",
      detail: JSON.stringify({ n: seq }),
    };
    prev = auditHash(prev, content);
    out.push({ ...content, hash: prev });
  }
  return out;
}

function at(rows: AuditChainRow[], i: number): AuditChainRow {
  const r = rows[i];
  if (!r) throw new Error(`no row ${i}`);
  return r;
}

describe("audit integrity: verifyAuditChain", () => {
  it("accepts an untouched chain and an empty one", () => {
    expect(verifyAuditChain(chain(5), 5)).toEqual({ ok: true, rows: 5 });
    expect(verifyAuditChain([], 0)).toEqual({ ok: true, rows: 0 });
  });

  it("names a row whose content changed, even by one character of its detail", () => {
    const rows = chain(5);
    rows[2] = { ...at(rows, 2), detail: JSON.stringify({ n: 4 }) };
    expect(verifyAuditChain(rows, 5)).toEqual({
      ok: false,
      rows: 5,
      firstBad: { seq: 3, reason: "changed" },
    });
  });

  it("names a row whose hash was replaced", () => {
    const rows = chain(4);
    rows[1] = { ...at(rows, 1), hash: "f".repeat(64) };
    expect(verifyAuditChain(rows, 4).firstBad).toEqual({ seq: 2, reason: "changed" });
  });

  it("names the first removed row, in the middle, at the start and at the end", () => {
    const middle = chain(5).filter((r) => r.seq !== 3);
    expect(verifyAuditChain(middle, 5).firstBad).toEqual({ seq: 3, reason: "missing" });
    const first = chain(5).filter((r) => r.seq !== 1);
    expect(verifyAuditChain(first, 5).firstBad).toEqual({ seq: 1, reason: "missing" });
    const last = chain(5).filter((r) => r.seq !== 5);
    expect(verifyAuditChain(last, 5)).toEqual({
      ok: false,
      rows: 4,
      firstBad: { seq: 5, reason: "missing" },
    });
  });

  it("names reordered rows: swapped content at the first swapped row, swapped positions as out of order", () => {
    const swapped = chain(5);
    const [a, b] = [at(swapped, 1), at(swapped, 3)];
    swapped[1] = { ...b, seq: a.seq, hash: a.hash };
    swapped[3] = { ...a, seq: b.seq, hash: b.hash };
    expect(verifyAuditChain(swapped, 5).firstBad).toEqual({ seq: 2, reason: "changed" });

    const moved = chain(5);
    [moved[1], moved[3]] = [at(moved, 3), at(moved, 1)];
    expect(verifyAuditChain(moved, 5).firstBad).toEqual({ seq: 4, reason: "out_of_order" });
  });
});
