import type { KeyObject } from "node:crypto";
import { type DecodedToken, decodeToken, verifySignature } from "../common/jws.js";
import { fromB64urlStrict, type PublicKeyCache } from "../common/keys.js";
import { inSchedule } from "../common/schedule.js";
import type { RefusalReason } from "../schemas/reasons.js";
import {
  type CredentialPayload,
  FramePayload,
  JwsHeader,
  type KeyMode,
  type RegistryEntry,
  RelayPayload,
  TokenType,
  type WeeklyWindow,
} from "../schemas/tokens.js";
import { parseJson, validator } from "../schemas/validate.js";
import type { StateLookups } from "./memory.js";

/**
 * The target's decision (DESIGN §4) as a named list of checks, cheapest first. Each check returns a
 * refusal reason or nothing; the decision changes no state, so a refused frame leaves no trace but
 * the event. The caller applies the accepted facts (seq, floor, use) afterwards.
 */

export const MAX_FRAME_BYTES = 8192;
/** A credential may be used this long before its `nbf`: a terminal's clock may run a little ahead. */
export const NBF_SKEW_S = 60;

/** What the decision may read: the persisted state, the open sessions, the challenge and the clock. */
export interface DecisionView extends StateLookups {
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
}

/** Keys and caches; the caches only remember verifications, they never change a decision. */
export interface DecisionKeys {
  /** Issuer public keys by kid (from the target's config). */
  readonly issuers: ReadonlyMap<string, KeyObject>;
  readonly holders: PublicKeyCache;
  readonly credentials: VerifiedCredentials;
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
}

/** What an accepted frame establishes; the target applies it. */
export interface AcceptedFrame {
  readonly typ: typeof TokenType.frame | typeof TokenType.relay;
  readonly mode: KeyMode;
  readonly term: string;
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
  | { readonly ok: false; readonly reason: RefusalReason; readonly slot?: string; readonly term?: string };

/** Who a frame claims to be and what it answers, the same for both frame types. */
interface Subject {
  readonly tid: string;
  readonly slot: string;
  readonly term: string;
  readonly nonce: string;
  readonly seq: number;
}

/** The frame under examination; each check may fill in what later checks read. */
interface Work {
  readonly raw: Buffer;
  readonly retain: boolean;
  header: Record<string, unknown>;
  payload: unknown;
  signingInput: Buffer;
  signature: Buffer;
  subject?: Subject;
  frame?: FramePayload;
  relay?: RelayPayload;
  entry?: RegistryEntry;
  cred?: CredentialPayload;
  credDecoded?: DecodedToken<typeof TokenType.credential>;
}

type Check = (w: Work, view: DecisionView, keys: DecisionKeys) => RefusalReason | undefined;
interface NamedCheck {
  readonly name: string;
  readonly run: Check;
}

const headerValidator = validator(JwsHeader, "jws header");
const frameValidator = validator(FramePayload, "frame");
const relayValidator = validator(RelayPayload, "relay frame");

/** A check ran before the one that fills its input: a bug in the list's order, not bad input. */
function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`decision check order: ${what} not yet known`);
  return value;
}

function parseEnvelope(w: Work): RefusalReason | undefined {
  const token = w.raw.toString("utf8");
  const first = token.indexOf(".");
  const last = token.lastIndexOf(".");
  // An empty signature segment passes here so that `alg: none` is reported as `bad_alg`.
  if (first <= 0 || last === first || token.indexOf(".", first + 1) !== last) return "malformed";
  const head = fromB64urlStrict(token.slice(0, first));
  const body = fromB64urlStrict(token.slice(first + 1, last));
  const signature = fromB64urlStrict(token.slice(last + 1));
  if (!head || !body || !signature) return "malformed";
  const header = parseJson(head.toString("utf8"));
  if (typeof header !== "object" || header === null || Array.isArray(header)) return "malformed";
  const payload = parseJson(body.toString("utf8"));
  if (payload === undefined) return "malformed";
  w.header = header as Record<string, unknown>;
  w.payload = payload;
  w.signingInput = Buffer.from(token.slice(0, last));
  w.signature = signature;
  return undefined;
}

/** Checks every token on the frames topic passes, whatever its `typ`. */
export const ENVELOPE_CHECKS: readonly NamedCheck[] = [
  { name: "size", run: (w) => (w.raw.length > MAX_FRAME_BYTES ? "payload_too_large" : undefined) },
  // DESIGN §3: a retained frame would replay to every new subscriber, however well signed.
  { name: "not_retained", run: (w) => (w.retain ? "retained_frame" : undefined) },
  { name: "envelope", run: parseEnvelope },
  { name: "alg", run: (w) => (w.header.alg === "EdDSA" ? undefined : "bad_alg") },
  { name: "signature_length", run: (w) => (w.signature.length === 64 ? undefined : "malformed") },
];

function effectiveMaxUses(cred: CredentialPayload, entry: RegistryEntry): number | undefined {
  if (cred.max_uses === undefined) return entry.max_uses;
  if (entry.max_uses === undefined) return cred.max_uses;
  return Math.min(cred.max_uses, entry.max_uses);
}

function registryTimed(entry: RegistryEntry): boolean {
  return entry.nbf !== undefined || entry.exp !== undefined;
}

/** Any limit judged by the clock: exp, a schedule, a first-use limit, the registry's nbf/exp. */
function timeLimited(cred: CredentialPayload, entry: RegistryEntry): boolean {
  return (
    cred.exp !== undefined ||
    cred.schedule !== undefined ||
    cred.first_use_ttl_s !== undefined ||
    registryTimed(entry)
  );
}

/** Unix seconds when a first-use limit ends the key, counting from `firstUseMs`. */
function firstUseExp(cred: CredentialPayload, firstUseMs: number | undefined): number | undefined {
  if (cred.first_use_ttl_s === undefined || firstUseMs === undefined) return undefined;
  return Math.floor(firstUseMs / 1000) + cred.first_use_ttl_s;
}

function opens(view: DecisionView, term: string, slot: string, gen: number): boolean {
  const s = view.session(term);
  return s === undefined || s.slot !== slot || s.gen !== gen;
}

/** Shared by both frame types, on the subject the schema check filled in. */
const SUBJECT_CHECKS: readonly NamedCheck[] = [
  { name: "tid", run: (w, v) => (need(w.subject, "subject").tid === v.tid ? undefined : "wrong_target") },
  {
    name: "nonce",
    run: (w, v) => {
      const nonce = need(w.subject, "subject").nonce;
      return nonce === v.currentNonce || nonce === v.previousNonce ? undefined : "stale_nonce";
    },
  },
  {
    // One seq line per terminal, whatever frame type it sends.
    name: "seq",
    run: (w, v) => {
      const f = need(w.subject, "subject");
      const last = v.lastSeq(f.term);
      return last !== undefined && f.seq <= last ? "replayed_seq" : undefined;
    },
  },
  {
    name: "slot_known",
    run: (w, v) => {
      w.entry = v.entry(need(w.subject, "subject").slot);
      return w.entry ? undefined : "unknown_slot";
    },
  },
  {
    name: "slot_status",
    run: (w, v) => {
      const entry = need(w.entry, "entry");
      if (entry.status === "suspended") return "slot_suspended";
      if (entry.status === "revoked") return "slot_revoked";
      const fleet = v.revocation(entry.slot);
      return fleet && fleet.below_gen === undefined ? "slot_revoked" : undefined;
    },
  },
];

function generationCheck(gen: (w: Work) => number): NamedCheck {
  return {
    name: "generation",
    run: (w, v) => {
      const entry = need(w.entry, "entry");
      const floor = Math.max(entry.min_gen, v.floor(entry.slot), v.revocation(entry.slot)?.below_gen ?? 0);
      return gen(w) < floor ? "old_generation" : undefined;
    },
  };
}

const TERMINAL_STATUS: NamedCheck = {
  name: "terminal_status",
  run: (w, v) => (v.terminalOffline(need(w.subject, "subject").term) ? "terminal_offline" : undefined),
};

/** `sparekey-frame+jws` (stored key, fob): the list of DESIGN §4 in order. */
export const FRAME_CHECKS: readonly NamedCheck[] = [
  { name: "header", run: (w) => (headerValidator.is(w.header) ? undefined : "malformed") },
  {
    name: "schema",
    run: (w) => {
      if (!frameValidator.is(w.payload)) return "schema_violation";
      w.frame = w.payload;
      w.subject = w.payload;
      return undefined;
    },
  },
  ...SUBJECT_CHECKS,
  {
    name: "credential_decodes",
    run: (w, _v, k) => {
      const token = need(w.frame, "frame").cred;
      const verified = k.credentials.get(token);
      if (verified) {
        w.cred = verified;
        return undefined;
      }
      try {
        w.credDecoded = decodeToken(token, TokenType.credential);
      } catch {
        return "bad_credential";
      }
      w.cred = w.credDecoded.payload;
      return undefined;
    },
  },
  {
    name: "credential_matches",
    run: (w) => {
      const f = need(w.frame, "frame");
      const c = need(w.cred, "credential");
      // A relay credential has no holder key: it must never let a terminal sign frames itself.
      const holderMode = c.mode === "stored" || c.mode === "fob";
      return c.slot === f.slot && c.term === f.term && holderMode && c.holder !== undefined
        ? undefined
        : "credential_mismatch";
    },
  },
  {
    name: "credential_target",
    run: (w, v) => (need(w.cred, "credential").tids.includes(v.tid) ? undefined : "credential_wrong_target"),
  },
  generationCheck((w) => need(w.cred, "credential").gen),
  TERMINAL_STATUS,
  {
    name: "issuer_known",
    run: (w, _v, k) => {
      if (!w.credDecoded) return undefined; // verified before, by a key still configured
      return k.issuers.has(w.credDecoded.header.kid) ? undefined : "unknown_issuer";
    },
  },
  {
    name: "issuer_signature",
    run: (w, _v, k) => {
      const decoded = w.credDecoded;
      if (!decoded) return undefined;
      const key = k.issuers.get(decoded.header.kid);
      if (!key || !verifySignature(decoded, key)) return "bad_credential_signature";
      k.credentials.set(need(w.frame, "frame").cred, decoded.payload);
      return undefined;
    },
  },
  {
    // Matter's door lock does the same: without trusted time, no time-limited key works.
    name: "clock",
    run: (w, v) =>
      !v.clockTrusted && timeLimited(need(w.cred, "credential"), need(w.entry, "entry"))
        ? "clock_untrusted"
        : undefined,
  },
  {
    name: "not_before",
    run: (w, v) => {
      const c = need(w.cred, "credential");
      const entry = need(w.entry, "entry");
      const now = Math.floor(v.nowMs / 1000);
      if (entry.nbf !== undefined && now < entry.nbf) return "not_yet_valid";
      // A key with no time limit is not refused for nbf on a clock the target cannot trust (no RTC yet).
      if (!v.clockTrusted && !timeLimited(c, entry)) return undefined;
      return now + NBF_SKEW_S < c.nbf ? "not_yet_valid" : undefined;
    },
  },
  {
    name: "expiry",
    run: (w, v) => {
      const c = need(w.cred, "credential");
      const entry = need(w.entry, "entry");
      const now = Math.floor(v.nowMs / 1000);
      if (c.exp !== undefined && now >= c.exp) return "expired";
      if (entry.exp !== undefined && now >= entry.exp) return "expired";
      const firstExp = firstUseExp(c, v.firstUse(c.slot, c.gen));
      return firstExp !== undefined && now >= firstExp ? "expired" : undefined;
    },
  },
  {
    name: "schedule",
    run: (w, v) => {
      const schedule = need(w.cred, "credential").schedule;
      return schedule && !inSchedule(schedule, v.nowMs, v.timeZone) ? "outside_schedule" : undefined;
    },
  },
  {
    name: "uses",
    run: (w, v) => {
      const f = need(w.frame, "frame");
      const c = need(w.cred, "credential");
      const max = effectiveMaxUses(c, need(w.entry, "entry"));
      if (max === undefined || !opens(v, f.term, f.slot, c.gen)) return undefined;
      return v.uses(c.slot, c.gen) >= max ? "uses_exhausted" : undefined;
    },
  },
  {
    name: "holder_signature",
    run: (w, _v, k) => {
      const holder = need(need(w.cred, "credential").holder, "holder");
      const key = k.holders.get(holder);
      const decoded: DecodedToken<typeof TokenType.frame> = {
        header: w.header as JwsHeader,
        payload: need(w.frame, "frame"),
        signingInput: w.signingInput,
        signature: w.signature,
      };
      return key && verifySignature(decoded, key) ? undefined : "bad_frame_signature";
    },
  },
];

/**
 * `sparekey-relay+jws`: signed by the issuer for one nonce while the terminal's line is up, no
 * credential. Every relay frame is new (one per nonce), so its signature is never cached. Only the
 * registry's limits apply here: the key server judged the grant's own limits when it signed.
 */
export const RELAY_CHECKS: readonly NamedCheck[] = [
  { name: "header", run: (w) => (headerValidator.is(w.header) ? undefined : "malformed") },
  {
    name: "schema",
    run: (w) => {
      if (!relayValidator.is(w.payload)) return "schema_violation";
      w.relay = w.payload;
      w.subject = w.payload;
      return undefined;
    },
  },
  ...SUBJECT_CHECKS,
  generationCheck((w) => need(w.relay, "relay").gen),
  // The claim of a relay key: it works only while the key server's line is up.
  { name: "keyserver_status", run: (_w, v) => (v.keyserverOffline ? "keyserver_offline" : undefined) },
  TERMINAL_STATUS,
  {
    name: "issuer_known",
    run: (w, _v, k) => {
      const kid = w.header.kid;
      return typeof kid === "string" && k.issuers.has(kid) ? undefined : "unknown_issuer";
    },
  },
  {
    name: "issuer_signature",
    run: (w, _v, k) => {
      const key = k.issuers.get(String(w.header.kid));
      const decoded: DecodedToken<typeof TokenType.relay> = {
        header: w.header as JwsHeader,
        payload: need(w.relay, "relay"),
        signingInput: w.signingInput,
        signature: w.signature,
      };
      return key && verifySignature(decoded, key) ? undefined : "bad_issuer_signature";
    },
  },
  {
    name: "clock",
    run: (w, v) => (!v.clockTrusted && registryTimed(need(w.entry, "entry")) ? "clock_untrusted" : undefined),
  },
  {
    name: "not_before",
    run: (w, v) => {
      const nbf = need(w.entry, "entry").nbf;
      return nbf !== undefined && Math.floor(v.nowMs / 1000) < nbf ? "not_yet_valid" : undefined;
    },
  },
  {
    name: "expiry",
    run: (w, v) => {
      const exp = need(w.entry, "entry").exp;
      return exp !== undefined && Math.floor(v.nowMs / 1000) >= exp ? "expired" : undefined;
    },
  },
  {
    name: "uses",
    run: (w, v) => {
      const r = need(w.relay, "relay");
      const max = need(w.entry, "entry").max_uses;
      if (max === undefined || !opens(v, r.term, r.slot, r.gen)) return undefined;
      return v.uses(r.slot, r.gen) >= max ? "uses_exhausted" : undefined;
    },
  },
];

/** The checks for each frame `typ`; any other `typ` on the frames topic is `wrong_typ`. */
export const CHECKS_BY_TYP: Readonly<Record<string, readonly NamedCheck[]>> = {
  [TokenType.frame]: FRAME_CHECKS,
  [TokenType.relay]: RELAY_CHECKS,
};

function usesLeft(max: number | undefined, used: number, opensSession: boolean): number | undefined {
  return max === undefined ? undefined : Math.max(0, max - used - (opensSession ? 1 : 0));
}

function acceptedRelay(r: RelayPayload, entry: RegistryEntry, view: DecisionView): AcceptedFrame {
  const opensSession = opens(view, r.term, r.slot, r.gen);
  return {
    typ: TokenType.relay,
    mode: "relay",
    term: r.term,
    slot: r.slot,
    gen: r.gen,
    seq: r.seq,
    exp: entry.exp,
    opensSession,
    usesLeft: usesLeft(entry.max_uses, view.uses(r.slot, r.gen), opensSession),
  };
}

function accepted(w: Work, view: DecisionView): AcceptedFrame {
  const entry = need(w.entry, "entry");
  if (w.relay) return acceptedRelay(w.relay, entry, view);
  const f = need(w.frame, "frame");
  const c = need(w.cred, "credential");
  const opensSession = opens(view, f.term, f.slot, c.gen);
  const recorded = view.firstUse(c.slot, c.gen);
  // The first accepted use starts a first-use limit; the target persists it before it opens.
  const firstUseAt = c.first_use_ttl_s !== undefined && recorded === undefined ? view.nowMs : undefined;
  const exps = [c.exp, entry.exp, firstUseExp(c, recorded ?? firstUseAt)].filter(
    (e): e is number => e !== undefined,
  );
  return {
    typ: TokenType.frame,
    mode: c.mode,
    term: f.term,
    slot: f.slot,
    gen: c.gen,
    seq: f.seq,
    exp: exps.length > 0 ? Math.min(...exps) : undefined,
    opensSession,
    usesLeft: usesLeft(effectiveMaxUses(c, entry), view.uses(c.slot, c.gen), opensSession),
    schedule: c.schedule,
    firstUseAt,
  };
}

function refused(reason: RefusalReason, w: Work): Decision {
  const f = w.subject;
  return f ? { ok: false, reason, slot: f.slot, term: f.term } : { ok: false, reason };
}

/** Run the checks on one raw MQTT payload. Never throws for bad input. */
export function decideFrame(raw: Buffer, retain: boolean, view: DecisionView, keys: DecisionKeys): Decision {
  const w: Work = {
    raw,
    retain,
    header: {},
    payload: undefined,
    signingInput: Buffer.alloc(0),
    signature: Buffer.alloc(0),
  };
  for (const check of ENVELOPE_CHECKS) {
    const reason = check.run(w, view, keys);
    if (reason) return refused(reason, w);
  }
  const typ = w.header.typ;
  const checks =
    typeof typ === "string" && Object.hasOwn(CHECKS_BY_TYP, typ) ? CHECKS_BY_TYP[typ] : undefined;
  if (!checks) return refused("wrong_typ", w);
  for (const check of checks) {
    const reason = check.run(w, view, keys);
    if (reason) return refused(reason, w);
  }
  return { ok: true, frame: accepted(w, view) };
}
