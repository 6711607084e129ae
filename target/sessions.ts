import type { TokenTypeValue } from "../schemas/tokens.js";
import type { HeldKey } from "./standing.js";

/** Delays above this overflow Node's timers (they would fire at once). */
const MAX_DELAY_MS = 2_147_483_647;

export type SessionEndReason = "frame_timeout" | "expired";

/** One terminal's open session. Several may be open at once; the target is available while any is. */
export interface Session extends HeldKey {
  /** Which frame type opened it: the relay type will end on the key server's status too. */
  readonly typ: TokenTypeValue;
  readonly openedAt: number;
  /** The user the verified credential or relay frame names behind `term`. */
  readonly user?: string | undefined;
  /** Uses left after this session opened, for a count-limited key: 0 means it used the last one. */
  readonly usesLeft?: number | undefined;
}

interface Entry {
  session: Session;
  timeout: NodeJS.Timeout;
  expiry: NodeJS.Timeout | undefined;
}

export interface SessionTableDeps {
  /** No good frame for this long ends a session (`frame_timeout`). */
  timeoutMs: number;
  /** The target's clock (Unix ms), to arm expiry timers. */
  now: () => number;
  /** Called when a session's own timer says it is over; the caller ends it (and removes it). */
  onTimer: (term: string, reason: SessionEndReason) => void;
}

/** Open sessions by terminal, each with a frame timeout and an expiry timer. */
export class SessionTable {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly deps: SessionTableDeps) {}

  get(term: string): Session | undefined {
    return this.entries.get(term)?.session;
  }
  get size(): number {
    return this.entries.size;
  }
  all(): Session[] {
    return [...this.entries.values()].map((e) => e.session);
  }

  /** Open (or replace) the terminal's session. */
  open(session: Session): void {
    this.remove(session.term);
    const timeout = setTimeout(() => this.fire(session.term, "frame_timeout"), this.deps.timeoutMs);
    this.entries.set(session.term, { session, timeout, expiry: this.armExpiry(session) });
  }

  /** A good frame continued the session: restart its frame timeout. */
  touch(term: string): void {
    this.entries.get(term)?.timeout.refresh();
  }

  /** Remove a session; returns it when it was open. */
  remove(term: string): Session | undefined {
    const e = this.entries.get(term);
    if (!e) return undefined;
    clearTimeout(e.timeout);
    if (e.expiry) clearTimeout(e.expiry);
    this.entries.delete(term);
    return e.session;
  }

  clear(): void {
    for (const term of [...this.entries.keys()]) this.remove(term);
  }

  private armExpiry(session: Session): NodeJS.Timeout | undefined {
    if (session.expMs === undefined) return undefined;
    const delay = Math.min(Math.max(0, session.expMs - this.deps.now()), MAX_DELAY_MS);
    return setTimeout(() => {
      if (this.deps.now() >= (session.expMs ?? 0)) this.fire(session.term, "expired");
      else {
        // The capped delay ran out before exp: re-arm for the rest.
        const e = this.entries.get(session.term);
        if (e?.session === session) e.expiry = this.armExpiry(session);
      }
    }, delay);
  }

  private fire(term: string, reason: SessionEndReason): void {
    if (this.entries.has(term)) this.deps.onTimer(term, reason);
  }
}
