import type { TargetConfig } from "../schemas/config.js";
import type { EventType } from "../schemas/messages.js";
import type { RefusalReason } from "../schemas/reasons.js";
import type { TargetClock } from "./clock.js";
import type { EventFields } from "./events.js";
import { Lockouts, lockoutPolicy } from "./lockout.js";
import type { TargetMemory } from "./memory.js";
import type { StatePersister } from "./persister.js";
import { RefusalCoalescer } from "./refusal-coalescer.js";

export interface FrameRefusalsDeps {
  config: TargetConfig;
  persister: StatePersister;
  memory: TargetMemory;
  clock: TargetClock;
  event: (type: EventType, fields: EventFields) => void;
  /** To `terminals/{term}/verdicts`: the terminal's own reason, on the same coalesced beat as the event. */
  verdict: (term: string, reason: RefusalReason) => void;
}

/**
 * What a refused frame does besides being counted: a coalesced `auth_refused` event with a verdict to
 * its sender (both at most one per terminal per period, so bad frames cannot make the target exceed its
 * publish budget), and a step towards
 * its sender's lockout (a persisted lockout raises a `lockout` alarm). Both key on the frames topic's
 * `{term}`, which the broker vouches for, never on a payload field.
 */
export class FrameRefusals {
  private readonly events: RefusalCoalescer;
  private readonly lockouts: Lockouts;

  constructor(deps: FrameRefusalsDeps) {
    const { clock, memory } = deps;
    this.events = new RefusalCoalescer({
      periodMs: deps.config.period_ms,
      // `count` only when several refusals were summed: a lone refusal reads as before.
      emit: ({ term, reason, slot, user, count }) => {
        deps.event("auth_refused", { reason, slot, term, user, ...(count > 1 ? { count } : {}) });
        deps.verdict(term, reason);
      },
    });
    this.lockouts = new Lockouts({
      policy: lockoutPolicy(deps.config),
      commit: (lockout) => deps.persister.commit({ lockout }),
      now: () => clock.now(),
      lockedOut: (term) => memory.lockedOut(term, clock.now()),
      alarm: (term, count, until) => deps.event("lockout", { reason: "locked_out", term, count, until }),
    });
  }

  refused(from: string, reason: RefusalReason, slot: string | undefined, user?: string): void {
    this.events.add(from, reason, slot, user);
    this.lockouts.refused(from, reason);
  }

  /** Publish the refusals still summed up (the target is stopping). */
  flush(): void {
    this.events.flush();
  }
}
