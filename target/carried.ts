import type { KeyObject } from "node:crypto";
import type { Logger } from "../common/log.js";
import type { RefusalReason } from "../schemas/reasons.js";
import { isId } from "../schemas/topics.js";
import { type CarriedTokenResult, verifyCarriedToken } from "./issuer-tokens.js";

/** A token is at most 8 KiB (common/jws.ts): a longer carried payload is dropped before it is parsed. */
export const CARRIED_MAX_BYTES = 8192;

export type CarriedRefusal = "registry_refused" | "revocations_refused";

export interface CarriedIntakeDeps {
  issuers: ReadonlyMap<string, KeyObject>;
  logger: Logger;
  /** The target's own clock (Unix ms). */
  now: () => number;
  /** At most one refusal event per this many ms, whoever carried what. */
  periodMs: number;
  /** Publish one refusal event. */
  event: (type: CarriedRefusal, reason: RefusalReason | undefined, term: string) => void;
}

/**
 * Registries and fleet lists that terminals carry to `targets/{tid}/carried/{term}`. Any terminal may
 * publish there, so nothing it sends may cost the target more than a debug line: refusals are
 * coalesced into at most one event per period, and the engine applies what verifies only when newer.
 */
export class CarriedIntake {
  private lastEventAt = Number.NEGATIVE_INFINITY;
  private coalesced = 0;

  constructor(private readonly deps: CarriedIntakeDeps) {}

  /** The verified (or refused) token in `raw`; undefined for a payload not worth verifying. */
  take(term: string, raw: Buffer, retain: boolean): CarriedTokenResult | undefined {
    // Retained never comes from the broker's ACL; refused anyway, as a replay that no one carried now.
    if (!isId(term) || retain || raw.length === 0 || raw.length > CARRIED_MAX_BYTES) {
      this.deps.logger.debug({ term, bytes: raw.length, retain }, "carried payload dropped");
      return undefined;
    }
    return verifyCarriedToken(raw, this.deps.issuers);
  }

  /** A carried token that did not verify, or named another target: a debug line, an event at most. */
  refuse(type: CarriedRefusal, reason: RefusalReason | undefined, term: string): void {
    this.deps.logger.debug({ type, reason, term }, "carried token refused");
    const now = this.deps.now();
    if (now - this.lastEventAt < this.deps.periodMs) {
      this.coalesced++;
      return;
    }
    if (this.coalesced > 0)
      this.deps.logger.debug({ coalesced: this.coalesced }, "carried refusals coalesced");
    this.lastEventAt = now;
    this.coalesced = 0;
    this.deps.event(type, reason, term);
  }
}
