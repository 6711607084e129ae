/**
 * Failed-login limiter, in memory: after `maxFailures` failures within `windowMs` a key is refused
 * for `blockMs`. Bounded: when full, the entry that was touched longest ago is dropped, so hostile
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
