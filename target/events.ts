import type {
  Challenge,
  EventType,
  LockState,
  TargetEvent,
  TargetState,
  Verdict,
} from "../schemas/messages.js";
import type { RefusalReason, StateReason } from "../schemas/reasons.js";

/** Builders of the target's outgoing messages, so every field is set the same way everywhere. */

/** Who holds the target open: a key session (slot), or a one-time unlock (no slot). */
export interface StateHolder {
  readonly slot?: string | undefined;
  readonly term: string;
  readonly user?: string | undefined;
  readonly mode: NonNullable<TargetState["mode"]>;
  readonly usesLeft?: number | undefined;
}

export function stateMessage(
  tid: string,
  state: LockState,
  reason: StateReason,
  since: number,
  holder?: StateHolder,
): TargetState {
  if (!holder) return { v: 1, tid, state, since, reason };
  const message: TargetState = { v: 1, tid, state, term: holder.term, since, reason, mode: holder.mode };
  if (holder.slot !== undefined) message.slot = holder.slot;
  if (holder.user !== undefined) message.user = holder.user;
  if (holder.usesLeft !== undefined) message.uses_left = holder.usesLeft;
  return message;
}

export interface EventFields {
  reason?: RefusalReason | StateReason | undefined;
  slot?: string | undefined;
  term?: string | undefined;
  user?: string | undefined;
  gen?: number | undefined;
  version?: number | undefined;
  uses_left?: number | undefined;
  cmd_id?: string | undefined;
  count?: number | undefined;
  until?: number | undefined;
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
  if (fields.user !== undefined) event.user = fields.user;
  if (fields.gen !== undefined) event.gen = fields.gen;
  if (fields.version !== undefined) event.version = fields.version;
  if (fields.uses_left !== undefined) event.uses_left = fields.uses_left;
  if (fields.cmd_id !== undefined) event.cmd_id = fields.cmd_id;
  if (fields.count !== undefined) event.count = fields.count;
  if (fields.until !== undefined) event.until = fields.until;
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
  /** To `terminals/{term}/verdicts`: why this terminal's frames were refused or its session ended. */
  verdict?(term: string, message: Verdict): void;
  /** Follow `terminals/{term}/status` while the terminal holds a session. */
  follow?(term: string): void;
  unfollow?(term: string): void;
}
