/** A one-time unlock holding the target open for its duration. */
export interface UnlockHold {
  readonly cmdId: string;
  readonly term: string;
  readonly timer: NodeJS.Timeout;
}

/** The applied unlocks still holding the target open, each until its `duration_ms` runs out. */
export class UnlockHolds {
  private readonly holds = new Map<string, UnlockHold>();

  constructor(private readonly onElapsed: (cmdId: string, term: string) => void) {}

  get size(): number {
    return this.holds.size;
  }

  hold(cmdId: string, term: string, durationMs: number): void {
    const timer = setTimeout(() => {
      if (this.holds.delete(cmdId)) this.onElapsed(cmdId, term);
    }, durationMs);
    this.holds.set(cmdId, { cmdId, term, timer });
  }

  /** Stop every hold; returns them (for their `stopping` events). */
  clear(): UnlockHold[] {
    const all = [...this.holds.values()];
    for (const h of all) clearTimeout(h.timer);
    this.holds.clear();
    return all;
  }
}
