import { TARGET_LOCKOUT_DEFAULTS, type TargetConfig } from "../schemas/config.js";
import type { RefusalReason } from "../schemas/reasons.js";

/**
 * Wrong-key lockout (Matter's WrongCodeEntryLimit): `limit` counted refusals from one terminal within
 * `windowMs` lock that terminal out for `durationMs`. The terminal is the `{term}` level of the frames
 * topic, which the broker vouches for, never a payload field: junk naming a victim cannot lock the
 * victim out. This module only counts; the engine persists a lockout before it acts on it.
 */

export interface LockoutPolicy {
  readonly limit: number;
  readonly windowMs: number;
  readonly durationMs: number;
}

export function lockoutPolicy(config: TargetConfig): LockoutPolicy {
  const d = TARGET_LOCKOUT_DEFAULTS;
  return {
    limit: config.lockout_refusals ?? d.lockout_refusals,
    windowMs: (config.lockout_window_s ?? d.lockout_window_s) * 1000,
    durationMs: (config.lockout_s ?? d.lockout_s) * 1000,
  };
}

/**
 * Refusals a genuine, current key can meet through no fault of its holder: a frame in flight across a
 * rotation, the target's own clock or line, a key not valid yet or any more, a slot suspended or retired.
 * They say nothing about a wrong key, so they never count towards a lockout (the holder's phone keeps
 * sending once a period and must work again the moment the cause is gone). `locked_out` itself does not
 * count either: a lockout is not extended by the frames it refuses.
 */
const NOT_COUNTED: ReadonlySet<RefusalReason> = new Set<RefusalReason>([
  "stale_nonce",
  "clock_untrusted",
  "not_yet_valid",
  "expired",
  "outside_schedule",
  "uses_exhausted",
  "slot_suspended",
  "slot_revoked",
  "old_generation",
  "keyserver_offline",
  "terminal_offline",
  "locked_out",
]);

export function countsTowardsLockout(reason: RefusalReason): boolean {
  return !NOT_COUNTED.has(reason);
}

/** Above this many terminals with recent refusals, the stale ones are dropped before one is added. */
const PRUNE_ABOVE = 1024;

/** Recent counted refusals per terminal (in memory: only a lockout itself is persisted). */
export class RefusalWindow {
  private readonly recent = new Map<string, number[]>();

  constructor(private readonly policy: LockoutPolicy) {}

  /**
   * Note one refusal of `term` at `nowMs`. Returns how many counted refusals fell within the window
   * when this one reaches the limit (the caller locks the terminal out), else undefined.
   */
  note(term: string, reason: RefusalReason, nowMs: number): number | undefined {
    if (!countsTowardsLockout(reason)) return undefined;
    const since = nowMs - this.policy.windowMs;
    let times = this.recent.get(term);
    if (!times) {
      if (this.recent.size >= PRUNE_ABOVE) this.prune(since);
      times = [];
      this.recent.set(term, times);
    }
    while (times.length > 0 && (times[0] ?? 0) <= since) times.shift();
    times.push(nowMs);
    if (times.length < this.policy.limit) return undefined;
    this.recent.delete(term);
    return times.length;
  }

  private prune(since: number): void {
    for (const [term, times] of this.recent) {
      if ((times.at(-1) ?? 0) <= since) this.recent.delete(term);
    }
  }
}

export interface LockoutsDeps {
  policy: LockoutPolicy;
  /** Persist the lockout; false when the write failed (then nothing is locked). */
  commit: (lockout: { term: string; untilMs: number; nowMs: number }) => boolean;
  /** The target's clock (Unix ms). */
  now: () => number;
  /** The terminal is locked out now: its refusals count towards nothing more (no second alarm). */
  lockedOut: (term: string) => boolean;
  /** Raise the alarm: `term` locked out until `untilMs` after `count` refusals. */
  alarm: (term: string, count: number, untilMs: number) => void;
}

/** Counts each refusal and, at the limit, persists the lockout and only then raises the alarm. */
export class Lockouts {
  private readonly window: RefusalWindow;

  constructor(private readonly deps: LockoutsDeps) {
    this.window = new RefusalWindow(deps.policy);
  }

  refused(term: string, reason: RefusalReason): void {
    if (this.deps.lockedOut(term)) return;
    const nowMs = this.deps.now();
    const count = this.window.note(term, reason, nowMs);
    if (count === undefined) return;
    const untilMs = nowMs + this.deps.policy.durationMs;
    // Persist before acting: a restart must not lift the lockout.
    if (this.deps.commit({ term, untilMs, nowMs })) this.deps.alarm(term, count, untilMs);
  }
}
