/**
 * Failure limiter (the remote-unlock password's), in memory: after `maxFailures` failures within
 * `windowMs` a key is refused for `blockMs`. Logins use `Backoff` through `login-limits.ts` instead. Bounded: when full, the entry that was touched longest ago is dropped, so hostile
 * client ids cannot grow it without limit.
 */
export interface RateLimitOptions {
  maxFailures?: number;
  windowMs?: number;
  blockMs?: number;
  capacity?: number;
  now?: () => number;
}

interface Entry {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly blockMs: number;
  private readonly capacity: number;
  private readonly now: () => number;

  constructor(options: RateLimitOptions = {}) {
    this.maxFailures = options.maxFailures ?? 5;
    this.windowMs = options.windowMs ?? 60_000;
    this.blockMs = options.blockMs ?? 60_000;
    this.capacity = options.capacity ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  isBlocked(key: string): boolean {
    const e = this.entries.get(key);
    return e !== undefined && e.blockedUntil > this.now();
  }

  fail(key: string): void {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e || now - e.windowStart >= this.windowMs) e = { windowStart: now, failures: 0, blockedUntil: 0 };
    e.failures += 1;
    if (e.failures >= this.maxFailures) {
      e.blockedUntil = now + this.blockMs;
      e.failures = 0;
      e.windowStart = now;
    }
    // Re-insert so Map order is "least recently touched first".
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  succeed(key: string): void {
    this.entries.delete(key);
  }
}

export interface BackoffOptions {
  /** Failures a key may have before it must wait (the `free`-th failure starts the first wait). */
  free: number;
  /** The first wait; each further failure doubles it. */
  baseMs: number;
  maxMs: number;
  /** A key with no failure for this long starts over. */
  forgetMs: number;
  capacity: number;
  now: () => number;
}

interface BackoffEntry {
  failures: number;
  lastFailure: number;
  blockedUntil: number;
}

/**
 * Failures per key with exponential back-off: the `free`-th failure makes the key wait `baseMs`, and
 * each further one twice as long as the last (at most `maxMs`), before it is tried again. Bounded like FailureLimiter: the
 * entry touched longest ago goes first.
 */
export class Backoff {
  private readonly entries = new Map<string, BackoffEntry>();

  constructor(private readonly options: BackoffOptions) {}

  /** Milliseconds `key` must still wait; 0 when it may be tried now. */
  retryAfterMs(key: string): number {
    const e = this.entries.get(key);
    return e === undefined ? 0 : Math.max(0, e.blockedUntil - this.options.now());
  }

  fail(key: string): void {
    const { free, baseMs, maxMs, forgetMs, capacity, now } = this.options;
    const t = now();
    let e = this.entries.get(key);
    if (!e || t - e.lastFailure >= forgetMs) e = { failures: 0, lastFailure: t, blockedUntil: 0 };
    e.failures += 1;
    e.lastFailure = t;
    const over = e.failures - free;
    // 2^30 is far beyond any sane maxMs: stop the exponent before it overflows.
    if (over >= 0) e.blockedUntil = t + Math.min(maxMs, baseMs * 2 ** Math.min(over, 30));
    this.entries.delete(key);
    this.entries.set(key, e);
    if (this.entries.size > capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  clear(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
