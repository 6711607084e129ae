import { Type } from "@sinclair/typebox";

/**
 * Why a target refused a frame (DESIGN §4), in the order the checks run. A closed set: codes are
 * never reused for another meaning; docs/PROTOCOL.md explains each.
 */
export const REFUSAL_REASONS = [
  "payload_too_large",
  "retained_frame",
  "malformed",
  "bad_alg",
  "wrong_typ",
  "schema_violation",
  "wrong_target",
  "stale_nonce",
  "replayed_seq",
  "unknown_slot",
  "slot_suspended",
  "slot_revoked",
  "old_generation",
  "unknown_issuer",
  "bad_credential",
  "bad_credential_signature",
  "credential_mismatch",
  "credential_wrong_target",
  "clock_untrusted",
  "not_yet_valid",
  "expired",
  "uses_exhausted",
  "bad_frame_signature",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
export const RefusalReasonSchema = Type.Union(REFUSAL_REASONS.map((r) => Type.Literal(r)));

/** Why a target's state changed. */
export const STATE_REASONS = [
  "started",
  "frame_accepted",
  "frame_timeout",
  "terminal_offline",
  "keyserver_offline",
  "expired",
  "slot_revoked",
  "old_generation",
  "uses_exhausted",
  "stopping",
] as const;
export type StateReason = (typeof STATE_REASONS)[number];
export const StateReasonSchema = Type.Union(STATE_REASONS.map((r) => Type.Literal(r)));
