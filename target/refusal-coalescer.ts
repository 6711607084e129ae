import type { RefusalReason } from "../schemas/reasons.js";

/**
 * At most one refusal event per terminal per period, so bad frames cannot make the target exceed its
 * own publish budget and talk itself off the broker. A terminal's first refusal after a quiet period is
 * reported at once; the ones that follow within the period are summed into one event at its end
 * (`count`, with the latest reason and slot), and so on while they keep coming: events of one terminal
 * are always at least a period apart. The key is the topic's `{term}` (the broker vouches for it).
 */

export interface CoalescedRefusal {
  readonly term: string;
  readonly reason: RefusalReason;
  readonly slot: string | undefined;
  /** The user a verified credential of the sender named (the latest refusal's). */
  readonly user?: string | undefined;
  /** Refusals since this terminal's previous refusal event (≥ 1). */
  readonly count: number;
}

interface Pending {
  count: number;
  reason: RefusalReason;
  slot: string | undefined;
  user: string | undefined;
  timer: NodeJS.Timeout;
}

export interface RefusalCoalescerDeps {
  periodMs: number;
  emit: (refusal: CoalescedRefusal) => void;
}

export class RefusalCoalescer {
  /** Terminals whose last event is less than a period old: their further refusals wait here. */
  private readonly open = new Map<string, Pending>();

  constructor(private readonly deps: RefusalCoalescerDeps) {}

  add(term: string, reason: RefusalReason, slot: string | undefined, user?: string): void {
    const pending = this.open.get(term);
    if (pending) {
      pending.count++;
      pending.reason = reason;
      pending.slot = slot;
      pending.user = user;
      return;
    }
    this.deps.emit({ term, reason, slot, user, count: 1 });
    this.open.set(term, { count: 0, reason, slot, user, timer: this.arm(term) });
  }

  /** Emit what is pending now and stop every timer (the target is stopping). */
  flush(): void {
    for (const [term, pending] of this.open) {
      clearTimeout(pending.timer);
      if (pending.count > 0) this.emitPending(term, pending);
    }
    this.open.clear();
  }

  private arm(term: string): NodeJS.Timeout {
    return setTimeout(() => this.periodEnded(term), this.deps.periodMs);
  }

  private periodEnded(term: string): void {
    const pending = this.open.get(term);
    if (!pending) return;
    if (pending.count === 0) {
      this.open.delete(term);
      return;
    }
    this.emitPending(term, pending);
    pending.count = 0;
    pending.timer = this.arm(term);
  }

  private emitPending(term: string, p: Pending): void {
    this.deps.emit({ term, reason: p.reason, slot: p.slot, user: p.user, count: p.count });
  }
}
