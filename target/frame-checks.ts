import { type DecodedToken, decodeToken, verifySignature } from "../common/jws.js";
import { type CredentialPayload, FramePayload, TokenType } from "../schemas/tokens.js";
import { validator } from "../schemas/validate.js";
import type { DecisionContext, Envelope } from "./checks.js";
import { acceptedFrame, CLOCK, EXPIRY, LINE_STATUS, NOT_BEFORE, SCHEDULE, USES } from "./limit-checks.js";
import { Checks, type NamedCheck, type NamedStage, Refused } from "./pipeline.js";
import {
  GENERATION,
  HEADER,
  type Keyed,
  SLOT_STATUS,
  type Slotted,
  SUBJECT_CHECKS,
  schemaStage,
  slotKnown,
} from "./stages.js";

/**
 * `sparekey-frame+jws` (stored key, fob): signed by the terminal's holder key, carrying the credential
 * the issuer signed for it. Stage 4 reads the credential; its issuer signature is verified once per
 * credential (cached), the holder signature on every frame, last, as the dearest check.
 */

type Ctx = DecisionContext;
/** Stage 4's value: the frame with its credential read (its issuer signature maybe still to verify). */
type Credentialed = Keyed<FramePayload> & { readonly cred: CredentialPayload };

const frameValidator = validator(FramePayload, "frame");

const CREDENTIAL: NamedStage<Slotted<FramePayload>, Credentialed, Ctx> = {
  name: "credential_decodes",
  run: (s, { keys }) => {
    const token = s.payload.cred;
    const verified = keys.credentials.get(token);
    if (verified) return { ...s, cred: verified, gen: verified.gen, mode: verified.mode };
    let credDecoded: DecodedToken<typeof TokenType.credential>;
    try {
      credDecoded = decodeToken(token, TokenType.credential);
    } catch {
      return new Refused("bad_credential");
    }
    const cred = credDecoded.payload;
    return { ...s, cred, credDecoded, gen: cred.gen, mode: cred.mode };
  },
};

type CredentialCheck = NamedCheck<Credentialed, Ctx>;

const CREDENTIAL_MATCHES: CredentialCheck = {
  name: "credential_matches",
  run: ({ cred, payload }) => {
    // A relay credential has no holder key: it must never let a terminal sign frames itself.
    const holderMode = cred.mode === "stored" || cred.mode === "fob";
    return cred.slot === payload.slot && cred.term === payload.term && holderMode && cred.holder !== undefined
      ? undefined
      : "credential_mismatch";
  },
};

const CREDENTIAL_TARGET: CredentialCheck = {
  name: "credential_target",
  run: ({ cred }, { view }) => (cred.tids.includes(view.tid) ? undefined : "credential_wrong_target"),
};

const ISSUER_KNOWN: CredentialCheck = {
  name: "issuer_known",
  // Without `credDecoded` the credential verified before, by a key still configured.
  run: ({ credDecoded }, { keys }) =>
    !credDecoded || keys.issuers.has(credDecoded.header.kid) ? undefined : "unknown_issuer",
};

const ISSUER_SIGNATURE: CredentialCheck = {
  name: "issuer_signature",
  run: ({ credDecoded, payload }, { keys }) => {
    if (!credDecoded) return undefined;
    const key = keys.issuers.get(credDecoded.header.kid);
    if (!key || !verifySignature(credDecoded, key)) return "bad_credential_signature";
    keys.credentials.set(payload.cred, credDecoded.payload);
    return undefined;
  },
};

const HOLDER_SIGNATURE: CredentialCheck = {
  name: "holder_signature",
  run: (c, { keys }) => {
    const key = c.cred.holder === undefined ? undefined : keys.holders.get(c.cred.holder);
    return key && verifySignature(c, key) ? undefined : "bad_frame_signature";
  },
};

/** Stages 2 to 4 of a stored frame, in order. */
export const FRAME_CHECKS = Checks.over<Envelope, Ctx>()
  .stage(HEADER)
  .stage(schemaStage((p): p is FramePayload => frameValidator.is(p)))
  .check(...SUBJECT_CHECKS)
  .stage(slotKnown<FramePayload>())
  .check(SLOT_STATUS)
  .stage(CREDENTIAL)
  .check(CREDENTIAL_MATCHES, CREDENTIAL_TARGET, GENERATION, ISSUER_KNOWN, ISSUER_SIGNATURE)
  .check(CLOCK, NOT_BEFORE, EXPIRY, SCHEDULE, USES, LINE_STATUS, HOLDER_SIGNATURE)
  .map((k, { view }) => acceptedFrame(k, view));
