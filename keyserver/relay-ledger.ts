/**
 * In-memory bookkeeping of relay signing: the last seq issued per terminal (frames must rise; seeding
 * from the clock keeps them rising across a key server restart) and when each (term, tid, slot) was
 * last audited. Bounded: the entry touched longest ago is dropped when full.
 */
export class RelayLedger {
  private readonly seqs = new Map<string, number>();
  private readonly audited = new Map<string, number>();
  private readonly signedNonces = new Map<string, string>();

  constructor(private readonly options: { auditEveryMs?: number; capacity?: number } = {}) {}

  /** max(last seq issued to `term` + 1, now). */
  nextSeq(term: string, nowMs: number): number {
    const seq = Math.max((this.seqs.get(term) ?? 0) + 1, nowMs);
    this.touch(this.seqs, term, seq);
    return seq;
  }

  /**
   * Claim `nonce` for one relay frame of `term` at `tid`: true the first time, false after. One frame
   * per challenge is all an honest terminal needs; a second one could be held back and replayed by an
   * accomplice after the line is cut, reopening the lock for the rest of the nonce's window.
   */
  claimNonce(term: string, tid: string, nonce: string): boolean {
    const key = `${term}/${tid}`;
    const seen = this.signedNonces.get(key);
    // The key server accepts the current and the previous nonce: remember the last two claimed.
    if (seen?.split(" ").includes(nonce)) return false;
    const last = seen?.split(" ")[0];
    this.touchString(this.signedNonces, key, last === undefined ? nonce : `${nonce} ${last}`);
    return true;
  }

  /** True for the first relay of a triple and then at most once per `auditEveryMs` (default a minute). */
  shouldAudit(term: string, tid: string, slot: string, nowMs: number): boolean {
    const key = `${term}/${tid}/${slot}`;
    const last = this.audited.get(key);
    if (last !== undefined && nowMs - last < (this.options.auditEveryMs ?? 60_000)) return false;
    this.touch(this.audited, key, nowMs);
    return true;
  }

  private touchString(map: Map<string, string>, key: string, value: string): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > (this.options.capacity ?? 100_000)) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
  }

  private touch(map: Map<string, number>, key: string, value: number): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > (this.options.capacity ?? 100_000)) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
  }
}
