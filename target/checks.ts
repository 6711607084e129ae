import type { KeyObject } from "node:crypto";
import { fromB64urlStrict, type PublicKeyCache } from "../common/keys.js";
import type { RefusalReason } from "../schemas/reasons.js";
import { type CredentialPayload, type KeyMode, TokenType, type WeeklyWindow } from "../schemas/tokens.js";
import { parseJson } from "../schemas/validate.js";
import { FRAME_CHECKS } from "./frame-checks.js";
import { Checks, type NamedCheck, Refused } from "./pipeline.js";
import { RELAY_CHECKS } from "./relay-checks.js";
import type { StandingView } from "./standing.js";

/**
 * The target's decision as named lists of checks in typed stages, cheapest first: envelope (this
 * file), then per frame `typ` header and payload, subject, credential and limits (`frame-checks.ts`,
 * `relay-checks.ts`). These lists are the one source of the order; docs/PROTOCOL.md's decision table
 * follows them (a test compares the two). Each check returns a refusal reason or nothing; the decision
 * changes no state, so a refused frame leaves no trace but the event. The caller applies the accepted
 * facts (seq, floor, use) afterwards.
 */

export const MAX_FRAME_BYTES = 8192;
/** A credential may be used this long before its `nbf`: a terminal's clock may run a little ahead. */
export const NBF_SKEW_S = 60;

/** What the decision may read: the persisted state, the open sessions, the challenge and the clock. */
export interface DecisionView extends StandingView {
  readonly tid: string;
  readonly currentNonce: string;
  readonly previousNonce: string | undefined;
  /** Unix ms by the target's own clock (never below its persisted high-water mark). */
  readonly nowMs: number;
  readonly clockTrusted: boolean;
  /** IANA zone of the target's weekly schedules. */
  readonly timeZone: string;
  /** The key server's retained status says offline (unknown counts as online). */
  readonly keyserverOffline: boolean;
  /** The terminal's status, followed while it holds a session, says offline. */
  terminalOffline(term: string): boolean;
  /** The open session of a terminal, if any: a frame that continues it counts no use. */
  session(term: string): { readonly slot: string; readonly gen: number } | undefined;
  /** The terminal is locked out after too many refusals (`lockout.ts`). */
  lockedOut(term: string): boolean;
}

/** Keys and caches; the caches only remember verifications, they never change a decision. */
export interface DecisionKeys {
  /** Issuer public keys by kid (from the target's config). */
  readonly issuers: ReadonlyMap<string, KeyObject>;
  readonly holders: PublicKeyCache;
  readonly credentials: VerifiedCredentials;
}

/** What every check may read besides its stage's value. */
export interface DecisionContext {
  readonly view: DecisionView;
  readonly keys: DecisionKeys;
  /** The `{term}` level of the frame's topic: the sender's own id, vouched for by the broker's ACL. */
  readonly from: string;
}

/** Credentials whose issuer signature already verified, by token string: a session pays for it once. */
export class VerifiedCredentials {
  private readonly map = new Map<string, CredentialPayload>();
  constructor(private readonly capacity = 1024) {}
  get(token: string): CredentialPayload | undefined {
    return this.map.get(token);
  }
  set(token: string, payload: CredentialPayload): void {
    if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(token, payload);
  }
  get size(): number {
    return this.map.size;
  }
  /** Forget them all (an issuer key stopped being trusted). */
  clear(): void {
    this.map.clear();
  }
}

/** What an accepted frame establishes; the target applies it. */
export interface AcceptedFrame {
  readonly typ: typeof TokenType.frame | typeof TokenType.relay;
  readonly mode: KeyMode;
  readonly term: string;
  /** The user the issuer names behind `term` (credential or relay frame, both verified by now). */
  readonly user?: string | undefined;
  readonly slot: string;
  readonly gen: number;
  readonly seq: number;
  /** Unix seconds when the key stops working (credential, registry or first-use exp), if limited. */
  readonly exp: number | undefined;
  readonly opensSession: boolean;
  /** Uses left after this frame, when the key is count-limited. */
  readonly usesLeft: number | undefined;
  /** The key's weekly windows: the target ends the session when the last one closes. */
  readonly schedule?: readonly WeeklyWindow[] | undefined;
  /** Set when this frame is the key's first use with a first-use limit: persist it (Unix ms). */
  readonly firstUseAt?: number | undefined;
}

export type Decision =
  | { readonly ok: true; readonly frame: AcceptedFrame }
  | {
      readonly ok: false;
      readonly reason: RefusalReason;
      /** The name of the check that refused, for the log. */
      readonly check: string;
      readonly slot?: string;
      readonly term?: string;
      /** The user a verified credential of this sender names (never read from an unverified token). */
      readonly user?: string;
    };

/** Stage 1's input: one raw MQTT payload on the frames topic. */
export interface RawFrame {
  readonly raw: Buffer;
  readonly retain: boolean;
}

/** A frame as it arrived: the payload, its retain flag and the `{term}` level of its topic. */
export interface IncomingFrame extends RawFrame {
  readonly from: string;
}

/** Stage 1's output: a token split into its parts; nothing about its contents is known yet. */
export interface Envelope {
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: unknown;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/** Reads nothing but the payload: shared with the unlock command's list. */
type RawCheck = NamedCheck<RawFrame, unknown>;
type EnvelopeCheck = NamedCheck<Envelope, DecisionContext>;

function parseEnvelope({ raw }: RawFrame): Envelope | Refused {
  const token = raw.toString("utf8");
  const first = token.indexOf(".");
  const last = token.lastIndexOf(".");
  const malformed = new Refused("malformed");
  // An empty signature segment passes here so that `alg: none` is reported as `bad_alg`.
  if (first <= 0 || last === first || token.indexOf(".", first + 1) !== last) return malformed;
  const head = fromB64urlStrict(token.slice(0, first));
  const body = fromB64urlStrict(token.slice(first + 1, last));
  const signature = fromB64urlStrict(token.slice(last + 1));
  if (!head || !body || !signature) return malformed;
  const header = parseJson(head.toString("utf8"));
  if (typeof header !== "object" || header === null || Array.isArray(header)) return malformed;
  const payload = parseJson(body.toString("utf8"));
  if (payload === undefined) return malformed;
  return {
    header: header as Record<string, unknown>,
    payload,
    signingInput: Buffer.from(token.slice(0, last)),
    signature,
  };
}

export const SIZE: RawCheck = {
  name: "size",
  run: ({ raw }) => (raw.length > MAX_FRAME_BYTES ? "payload_too_large" : undefined),
};
// A retained frame would replay to every new subscriber, however well signed.
export const NOT_RETAINED: RawCheck = {
  name: "not_retained",
  run: ({ retain }) => (retain ? "retained_frame" : undefined),
};
const ALG: EnvelopeCheck = { name: "alg", run: (e) => (e.header.alg === "EdDSA" ? undefined : "bad_alg") };
const SIGNATURE_LENGTH: EnvelopeCheck = {
  name: "signature_length",
  run: (e) => (e.signature.length === 64 ? undefined : "malformed"),
};

/** Stage 1, the same for every token on the frames topic whatever its `typ`. */
export const ENVELOPE_CHECKS = Checks.over<RawFrame, DecisionContext>()
  .check(SIZE, NOT_RETAINED)
  .stage({ name: "envelope", run: parseEnvelope })
  .check(ALG, SIGNATURE_LENGTH);

/** The stages after the envelope for each frame `typ`; any other `typ` is refused `wrong_typ`. */
export const CHECKS_BY_TYP = {
  [TokenType.frame]: FRAME_CHECKS,
  [TokenType.relay]: RELAY_CHECKS,
} as const;

type FrameTyp = keyof typeof CHECKS_BY_TYP;

function isFrameTyp(typ: unknown): typ is FrameTyp {
  return typeof typ === "string" && Object.hasOwn(CHECKS_BY_TYP, typ);
}

/** The name of the step that dispatches on the header's `typ`. */
export const TYP_CHECK = "typ";

/** Every check a frame of this `typ` passes, in order: the one source of the decision's order. */
export function decisionOrder(typ: FrameTyp): readonly string[] {
  return [...ENVELOPE_CHECKS.names, TYP_CHECK, ...CHECKS_BY_TYP[typ].names];
}

function subjectOf(last: unknown): { slot: string; term: string } | undefined {
  if (typeof last !== "object" || last === null || !("subject" in last)) return undefined;
  const s: unknown = last.subject;
  if (typeof s !== "object" || s === null || !("slot" in s) || !("term" in s)) return undefined;
  return typeof s.slot === "string" && typeof s.term === "string"
    ? { slot: s.slot, term: s.term }
    : undefined;
}

/**
 * The user behind a refused stored frame: only from a credential whose issuer signature verified (it is
 * in the cache) and that names the sender the broker vouches for. A relay frame's signature is its last
 * check, so a refused one names no user.
 */
function verifiedUser(last: unknown, keys: DecisionKeys, from: string): string | undefined {
  if (typeof last !== "object" || last === null || !("payload" in last)) return undefined;
  const p: unknown = last.payload;
  if (typeof p !== "object" || p === null || !("cred" in p) || typeof p.cred !== "string") return undefined;
  const cred = keys.credentials.get(p.cred);
  return cred?.term === from ? cred.user : undefined;
}

function refused(reason: RefusalReason, check: string, last?: unknown, user?: string): Decision {
  const who = subjectOf(last);
  if (!who) return { ok: false, reason, check };
  return {
    ok: false,
    reason,
    check,
    slot: who.slot,
    term: who.term,
    ...(user !== undefined ? { user } : {}),
  };
}

/** Run the checks on one raw MQTT payload. Never throws for bad input. */
export function decideFrame(frame: IncomingFrame, view: DecisionView, keys: DecisionKeys): Decision {
  const ctx: DecisionContext = { view, keys, from: frame.from };
  const envelope = ENVELOPE_CHECKS.run(frame, ctx);
  if (!envelope.ok) return refused(envelope.reason, envelope.check);
  const typ = envelope.value.header.typ;
  if (!isFrameTyp(typ)) return refused("wrong_typ", TYP_CHECK);
  const outcome = CHECKS_BY_TYP[typ].run(envelope.value, ctx);
  return outcome.ok
    ? { ok: true, frame: outcome.value }
    : refused(outcome.reason, outcome.check, outcome.last, verifiedUser(outcome.last, keys, frame.from));
}
