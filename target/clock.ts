/** Before this instant (2024-01-01) a wall clock is certainly wrong: the target has no real time yet. */
export const CLOCK_EPOCH_MS = Date.UTC(2024, 0, 1);
/**
 * How far the wall clock may lag the target's time before it is distrusted: enough for a small NTP
 * step, far too little to reopen an expired key.
 */
export const CLOCK_TOLERANCE_MS = 2_000;

export interface TargetClockDeps {
  /** The persisted high-water mark (Unix ms): the target's time never starts below it. */
  markMs: number;
  /** Wall clock (Unix ms); Date.now by default. */
  wall?: () => number;
  /** A monotonic clock in ms (any origin); performance.now by default. */
  monotonic?: () => number;
  toleranceMs?: number;
  /** Called once each time trust is lost (`false`) or regained (`true`). */
  onTrust?: (trusted: boolean) => void;
}

/**
 * The target's own clock. Its time advances from the persisted high-water mark by monotonic elapsed
 * time, so stepping the wall clock back neither stops it nor turns it back; a wall clock ahead of it is
 * taken (NTP set it, or the target was down for a while). A wall clock more than the tolerance behind
 * it is a clock attack or a reset: the clock is untrusted until the wall clock is back at or above it.
 * Linux slews CLOCK_MONOTONIC with the wall clock, so the two only part on a step.
 */
export class TargetClock {
  private readonly wall: () => number;
  private readonly monotonic: () => number;
  private readonly toleranceMs: number;
  /** The target's time at the monotonic instant `anchorMono`. */
  private anchorMs: number;
  private anchorMono: number;
  private isTrusted: boolean;

  constructor(private readonly deps: TargetClockDeps) {
    this.wall = deps.wall ?? Date.now;
    // The global, read at each call: fake timers in tests replace it.
    this.monotonic = deps.monotonic ?? (() => globalThis.performance.now());
    this.toleranceMs = deps.toleranceMs ?? CLOCK_TOLERANCE_MS;
    const wall = this.wall();
    const wallUsable = wall >= CLOCK_EPOCH_MS;
    this.anchorMs = wallUsable ? Math.max(wall, deps.markMs) : deps.markMs;
    this.anchorMono = this.monotonic();
    this.isTrusted = wallUsable && wall >= deps.markMs - this.toleranceMs;
  }

  /** The target's time (Unix ms): the mark plus monotonic elapsed time, or the wall clock when ahead. */
  now(): number {
    return this.observe();
  }

  /** Whether the wall clock agrees with the target's time; judging time-limited keys needs it. */
  trusted(): boolean {
    this.observe();
    return this.isTrusted;
  }

  /** The high-water mark to persist: the target's time now. */
  markMs(): number {
    return this.observe();
  }

  private observe(): number {
    const mono = this.monotonic();
    const wall = this.wall();
    let time = this.anchorMs + Math.floor(mono - this.anchorMono);
    const wallUsable = wall >= CLOCK_EPOCH_MS;
    if (wallUsable && wall >= time) {
      this.anchorMs = wall;
      this.anchorMono = mono;
      time = wall;
    }
    // Lost beyond the tolerance; regained only once the wall clock is back at the target's time.
    const trusted = this.isTrusted
      ? wallUsable && wall >= time - this.toleranceMs
      : wallUsable && wall >= time;
    if (trusted !== this.isTrusted) {
      this.isTrusted = trusted;
      this.deps.onTrust?.(trusted);
    }
    return time;
  }
}
