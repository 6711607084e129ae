import type { Challenge, EventType, LockState, TargetEvent, TargetState } from "../schemas/messages.js";
import type { RefusalReason, StateReason } from "../schemas/reasons.js";

/** Builders of the target's outgoing messages, so every field is set the same way everywhere. */

export function stateMessage(
  tid: string,
  state: LockState,
  reason: StateReason,
  since: number,
  session?: { slot: string; term: string },
): TargetState {
  return session
    ? { v: 1, tid, state, slot: session.slot, term: session.term, since, reason }
    : { v: 1, tid, state, since, reason };
}

export interface EventFields {
  reason?: RefusalReason | StateReason | undefined;
  slot?: string | undefined;
  term?: string | undefined;
  gen?: number | undefined;
  version?: number | undefined;
  uses_left?: number | undefined;
}

export function eventMessage(
  tid: string,
  ts: number,
  type: EventType,
  fields: EventFields = {},
): TargetEvent {
  const event: TargetEvent = { v: 1, tid, ts, type };
  if (fields.reason !== undefined) event.reason = fields.reason;
  if (fields.slot !== undefined) event.slot = fields.slot;
  if (fields.term !== undefined) event.term = fields.term;
  if (fields.gen !== undefined) event.gen = fields.gen;
  if (fields.version !== undefined) event.version = fields.version;
  if (fields.uses_left !== undefined) event.uses_left = fields.uses_left;
  return event;
}

export function challengeMessage(tid: string, nonce: string, periodMs: number, ts: number): Challenge {
  return { v: 1, tid, nonce, period_ms: periodMs, ts };
}

/** Where the target's messages go: MQTT in the component, a list in tests. */
export interface TargetOutbox {
  state(message: TargetState): void;
  event(message: TargetEvent): void;
  challenge(message: Challenge): void;
}
