import type { DecodedToken } from "../common/jws.js";
import type { CredentialPayload, JwsHeader, KeyMode, RegistryEntry } from "../schemas/tokens.js";
import { JwsHeader as JwsHeaderSchema } from "../schemas/tokens.js";
import { validator } from "../schemas/validate.js";
import type { DecisionContext, Envelope } from "./checks.js";
import { type NamedCheck, type NamedStage, Refused } from "./pipeline.js";
import { genBar, slotBar } from "./standing.js";

/**
 * The values the decision's stages hand on, and the checks both frame types share. Stage 2 (header
 * and payload) gives `Parsed`, stage 3 (subject) gives `Slotted`, and the key's own facts (`Keyed`)
 * come from the payload (relay) or the credential (stage 4, stored frames).
 */

/** Who a frame claims to be and what it answers, the same for both frame types. */
export interface Subject {
  readonly tid: string;
  readonly slot: string;
  readonly term: string;
  readonly nonce: string;
  readonly seq: number;
}

/** A token whose header members and payload passed their schemas. */
export interface Headed extends Envelope {
  readonly header: JwsHeader;
}

export interface Parsed<P extends Subject> extends Headed {
  readonly payload: P;
  readonly subject: Subject;
}

/** The subject's slot, found in the registry. */
export interface Slotted<P extends Subject> extends Parsed<P> {
  readonly entry: RegistryEntry;
}

/** The key's generation and mode, known once its issuer's claim (relay payload or credential) is read. */
export interface Keyed<P extends Subject = Subject> extends Slotted<P> {
  readonly gen: number;
  readonly mode: KeyMode;
  /** The credential of a stored frame; a relay frame has none and only the registry limits it. */
  readonly cred?: CredentialPayload | undefined;
  /** Set when the credential's issuer signature still has to be verified (not cached yet). */
  readonly credDecoded?: DecodedToken<"sparekey-credential+jws"> | undefined;
}

type Ctx = DecisionContext;

const headerValidator = validator(JwsHeaderSchema, "jws header");

export const HEADER: NamedStage<Envelope, Headed, Ctx> = {
  name: "header",
  run: (e) => (headerValidator.is(e.header) ? { ...e, header: e.header } : new Refused("malformed")),
};

export function schemaStage<P extends Subject>(
  is: (value: unknown) => value is P,
): NamedStage<Headed, Parsed<P>, Ctx> {
  return {
    name: "schema",
    run: (h) =>
      is(h.payload) ? { ...h, payload: h.payload, subject: h.payload } : new Refused("schema_violation"),
  };
}

type SubjectCheck = NamedCheck<Parsed<Subject>, Ctx>;

export const SUBJECT_CHECKS: readonly SubjectCheck[] = [
  {
    // The topic's {term} is the sender's own id (the broker's ACL): a frame naming another terminal is
    // refused here, before any lookup, and counted against the sender, never against the one it names.
    name: "term",
    run: ({ subject }, { from }) => (subject.term === from ? undefined : "term_mismatch"),
  },
  {
    // Cheap on purpose: a locked-out terminal costs no registry lookup and no signature check.
    name: "lockout",
    run: (_, { view, from }) => (view.lockedOut(from) ? "locked_out" : undefined),
  },
  { name: "tid", run: ({ subject }, { view }) => (subject.tid === view.tid ? undefined : "wrong_target") },
  {
    name: "nonce",
    run: ({ subject: { nonce } }, { view }) =>
      nonce === view.currentNonce || nonce === view.previousNonce ? undefined : "stale_nonce",
  },
  {
    // One seq line per terminal, whatever frame type it sends.
    name: "seq",
    run: ({ subject }, { view }) => {
      const last = view.lastSeq(subject.term);
      return last !== undefined && subject.seq <= last ? "replayed_seq" : undefined;
    },
  },
];

export function slotKnown<P extends Subject>(): NamedStage<Parsed<P>, Slotted<P>, Ctx> {
  return {
    name: "slot_known",
    run: (p, { view }) => {
      const entry = view.entry(p.subject.slot);
      return entry ? { ...p, entry } : new Refused("unknown_slot");
    },
  };
}

export const SLOT_STATUS: NamedCheck<Slotted<Subject>, Ctx> = {
  name: "slot_status",
  run: ({ entry }, { view }) => {
    const bar = slotBar(entry, view.revocation(entry.slot));
    if (bar === "suspended") return "slot_suspended";
    return bar ? "slot_revoked" : undefined;
  },
};

export const GENERATION: NamedCheck<Keyed, Ctx> = {
  name: "generation",
  run: ({ entry, gen }, { view }) => (genBar(view, entry, gen) ? "old_generation" : undefined),
};
