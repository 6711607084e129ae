import { verifySignature } from "../common/jws.js";
import { RelayPayload } from "../schemas/tokens.js";
import { validator } from "../schemas/validate.js";
import type { DecisionContext, Envelope } from "./checks.js";
import { acceptedFrame, CLOCK, EXPIRY, LINE_STATUS, NOT_BEFORE, USES } from "./limit-checks.js";
import { Checks, type NamedCheck } from "./pipeline.js";
import {
  GENERATION,
  HEADER,
  type Keyed,
  SLOT_STATUS,
  SUBJECT_CHECKS,
  schemaStage,
  slotKnown,
} from "./stages.js";
import { relayEpochBar } from "./standing.js";

/**
 * `sparekey-relay+jws`: signed by the issuer for one nonce while the terminal's line is up, no
 * credential. Every relay frame is new (one per nonce), so its signature is never cached and comes
 * last, as the dearest check. Only the registry's limits apply here: the key server judged the grant's
 * own limits when it signed.
 */

type Ctx = DecisionContext;
type Relayed = Keyed<RelayPayload>;

const relayValidator = validator(RelayPayload, "relay frame");

/** The frame's line epoch is the terminal's latest `online` one: a frame held back past a cut opens nothing. */
const RELAY_EPOCH: NamedCheck<Relayed, Ctx> = {
  name: "relay_epoch",
  run: ({ subject, payload }, { view }) => relayEpochBar(view, subject.term, payload.epoch),
};

const ISSUER_KNOWN: NamedCheck<Relayed, Ctx> = {
  name: "issuer_known",
  run: ({ header }, { keys }) => (keys.issuers.has(header.kid) ? undefined : "unknown_issuer"),
};

const ISSUER_SIGNATURE: NamedCheck<Relayed, Ctx> = {
  name: "issuer_signature",
  run: (r, { keys }) => {
    const key = keys.issuers.get(r.header.kid);
    return key && verifySignature(r, key) ? undefined : "bad_issuer_signature";
  },
};

/** Stages 2 and 3 of a relay frame, in order. */
export const RELAY_CHECKS = Checks.over<Envelope, Ctx>()
  .stage(HEADER)
  .stage(schemaStage((p): p is RelayPayload => relayValidator.is(p)))
  .check(...SUBJECT_CHECKS)
  .stage(slotKnown<RelayPayload>())
  .check(SLOT_STATUS)
  .map((s): Relayed => ({ ...s, gen: s.payload.gen, mode: "relay" }))
  .check(
    GENERATION,
    CLOCK,
    NOT_BEFORE,
    EXPIRY,
    USES,
    LINE_STATUS,
    RELAY_EPOCH,
    ISSUER_KNOWN,
    ISSUER_SIGNATURE,
  )
  .map((k, { view }) => acceptedFrame(k, view));
