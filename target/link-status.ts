import { newerStatus } from "../common/link-status.js";
import type { LinkStatus } from "../schemas/messages.js";

export { LinkStates, parseLinkStatus } from "../common/link-status.js";

/** How many terminals' statuses a target follows at most (sessions aside). */
export const FOLLOWED_TERMINALS = 4096;

/**
 * The terminals whose `terminals/{term}/status` the target follows, with the latest status of each. A
 * terminal is followed from its first session or relay frame and stays followed after its session ends,
 * so an `offline` heard once is not forgotten and a relay frame held back past a cut stays refused.
 * Bounded: past the capacity the terminal heard from longest ago without an open session is unfollowed.
 */
export class TerminalLinks {
  /** term -> latest status (undefined until the retained one arrives), oldest first. */
  private readonly followed = new Map<string, LinkStatus | undefined>();

  constructor(private readonly capacity = FOLLOWED_TERMINALS) {}

  isFollowed(term: string): boolean {
    return this.followed.has(term);
  }

  /**
   * Follow `term` (or mark it recent). Returns whether it is new (subscribe) and the terminals dropped to
   * make room (unsubscribe); `keep` names those that may not be dropped (an open session).
   */
  follow(term: string, keep: (term: string) => boolean): { added: boolean; dropped: string[] } {
    const added = !this.followed.has(term);
    const status = this.followed.get(term);
    this.followed.delete(term);
    this.followed.set(term, status);
    const dropped: string[] = [];
    if (this.followed.size > this.capacity) {
      for (const old of this.followed.keys()) {
        if (old === term || keep(old)) continue;
        this.followed.delete(old);
        dropped.push(old);
        break;
      }
    }
    return { added, dropped };
  }

  /** Record a followed terminal's status; false when it is stale (older epoch) or not followed. */
  accept(term: string, status: LinkStatus): boolean {
    if (!this.followed.has(term) || !newerStatus(this.followed.get(term), status)) return false;
    this.followed.set(term, status);
    return true;
  }

  get(term: string): LinkStatus | undefined {
    return this.followed.get(term);
  }

  /** Only a status actually seen counts: an unknown terminal is not offline. */
  offline(term: string): boolean {
    return this.followed.get(term)?.state === "offline";
  }

  clear(): void {
    this.followed.clear();
  }
}
