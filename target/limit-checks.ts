import { type CredentialPayload, type RegistryEntry, TokenType } from "../schemas/tokens.js";
import { type AcceptedFrame, type DecisionContext, type DecisionView, NBF_SKEW_S } from "./checks.js";
import type { NamedCheck } from "./pipeline.js";
import type { Keyed } from "./stages.js";
import { lineDown, outsideSchedule, pastExp } from "./standing.js";

/**
 * The limits of a key, judged by the target's own clock, its use counts and the line status: shared
 * by both frame types (a relay frame has no credential, so only the registry's limits apply to it).
 */

type LimitCheck = NamedCheck<Keyed, DecisionContext>;

function maxUses(cred: CredentialPayload | undefined, entry: RegistryEntry): number | undefined {
  if (cred?.max_uses === undefined) return entry.max_uses;
  if (entry.max_uses === undefined) return cred.max_uses;
  return Math.min(cred.max_uses, entry.max_uses);
}

function registryTimed(entry: RegistryEntry): boolean {
  return entry.nbf !== undefined || entry.exp !== undefined;
}

/** Any limit judged by the clock: exp, a schedule, a first-use limit, the registry's nbf/exp. */
function timeLimited(cred: CredentialPayload | undefined, entry: RegistryEntry): boolean {
  return (
    cred?.exp !== undefined ||
    cred?.schedule !== undefined ||
    cred?.first_use_ttl_s !== undefined ||
    registryTimed(entry)
  );
}

/** Unix seconds when a first-use limit ends the key, counting from `firstUseMs`. */
function firstUseExp(
  cred: CredentialPayload | undefined,
  firstUseMs: number | undefined,
): number | undefined {
  if (cred?.first_use_ttl_s === undefined || firstUseMs === undefined) return undefined;
  return Math.floor(firstUseMs / 1000) + cred.first_use_ttl_s;
}

/** Does this frame open a session (and so count a use), rather than continue the terminal's own? */
function opens(view: DecisionView, k: Keyed): boolean {
  const s = view.session(k.subject.term);
  return s === undefined || s.slot !== k.subject.slot || s.gen !== k.gen;
}

export const CLOCK: LimitCheck = {
  // Matter's door lock does the same: without trusted time, no time-limited key opens. A session
  // already open goes on: it was opened on trusted time, and monotonic time ends it at its expiry.
  name: "clock",
  run: (k, { view }) =>
    !view.clockTrusted && timeLimited(k.cred, k.entry) && opens(view, k) ? "clock_untrusted" : undefined,
};

export const NOT_BEFORE: LimitCheck = {
  name: "not_before",
  run: ({ cred, entry }, { view }) => {
    const now = Math.floor(view.nowMs / 1000);
    if (entry.nbf !== undefined && now < entry.nbf) return "not_yet_valid";
    // A key with no time limit is not refused for nbf on a clock the target cannot trust (no RTC yet).
    if (!cred || (!view.clockTrusted && !timeLimited(cred, entry))) return undefined;
    return now + NBF_SKEW_S < cred.nbf ? "not_yet_valid" : undefined;
  },
};

export const EXPIRY: LimitCheck = {
  name: "expiry",
  run: ({ cred, entry, gen }, { view }) => {
    const firstExp = firstUseExp(cred, cred ? view.firstUse(cred.slot, gen) : undefined);
    return [cred?.exp, entry.exp, firstExp].some((exp) => pastExp(exp, view.nowMs)) ? "expired" : undefined;
  },
};

export const SCHEDULE: LimitCheck = {
  name: "schedule",
  run: ({ cred }, { view }) => (outsideSchedule(cred?.schedule, view) ? "outside_schedule" : undefined),
};

export const USES: LimitCheck = {
  name: "uses",
  run: (k, { view }) => {
    const max = maxUses(k.cred, k.entry);
    if (max === undefined || !opens(view, k)) return undefined;
    return view.uses(k.subject.slot, k.gen) >= max ? "uses_exhausted" : undefined;
  },
};

/** The claim of a relay key: it works only while the key server's line is up; any key, while its terminal's is. */
export const LINE_STATUS: LimitCheck = {
  name: "line_status",
  run: ({ mode, subject }, { view }) => lineDown(view, mode, subject.term),
};

function usesLeft(max: number | undefined, used: number, opensSession: boolean): number | undefined {
  return max === undefined ? undefined : Math.max(0, max - used - (opensSession ? 1 : 0));
}

/** A relay payload's `user`: read only here, after the frame's issuer signature passed. */
function relayUser(payload: object): string | undefined {
  return "user" in payload && typeof payload.user === "string" ? payload.user : undefined;
}

/** The facts an accepted frame establishes, for the engine to apply. */
export function acceptedFrame(k: Keyed, view: DecisionView): AcceptedFrame {
  const { cred, entry, gen, subject } = k;
  const opensSession = opens(view, k);
  const used = view.uses(subject.slot, gen);
  const max = maxUses(cred, entry);
  if (!cred) {
    return {
      typ: TokenType.relay,
      mode: k.mode,
      term: subject.term,
      user: relayUser(k.payload),
      slot: subject.slot,
      gen,
      seq: subject.seq,
      exp: entry.exp,
      opensSession,
      usesLeft: usesLeft(max, used, opensSession),
    };
  }
  const recorded = view.firstUse(cred.slot, gen);
  // The first accepted use starts a first-use limit; the target persists it before it opens.
  const firstUseAt = cred.first_use_ttl_s !== undefined && recorded === undefined ? view.nowMs : undefined;
  const exps = [cred.exp, entry.exp, firstUseExp(cred, recorded ?? firstUseAt)].filter(
    (e): e is number => e !== undefined,
  );
  return {
    typ: TokenType.frame,
    mode: k.mode,
    term: subject.term,
    user: cred.user,
    slot: subject.slot,
    gen,
    seq: subject.seq,
    exp: exps.length > 0 ? Math.min(...exps) : undefined,
    opensSession,
    usesLeft: usesLeft(max, used, opensSession),
    schedule: cred.schedule,
    firstUseAt,
  };
}
