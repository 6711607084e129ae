import { type Static, Type } from "@sinclair/typebox";
import { Gen, Id, Kid, Nonce, ProtocolVersion, UnixMillis, Version } from "./common.js";
import { RefusalReasonSchema, StateReasonSchema } from "./reasons.js";

/** targets/{tid}/challenge: retained, a fresh nonce every period. `ts` is Unix milliseconds. */
export const Challenge = Type.Object(
  {
    v: ProtocolVersion,
    tid: Id,
    nonce: Nonce,
    period_ms: Type.Integer({ minimum: 50, maximum: 60_000 }),
    ts: UnixMillis,
  },
  { additionalProperties: false },
);
export type Challenge = Static<typeof Challenge>;

export const LockState = Type.Union([
  Type.Literal("available"),
  Type.Literal("unavailable"),
  Type.Literal("offline"),
]);
export type LockState = Static<typeof LockState>;

/** targets/{tid}/state: retained; the target's will publishes `offline`. `since` is Unix milliseconds. */
export const TargetState = Type.Object(
  {
    v: ProtocolVersion,
    tid: Id,
    state: LockState,
    slot: Type.Optional(Id),
    term: Type.Optional(Id),
    /** The user behind `term`, as the issuer vouched for it (a verified credential or relay frame); absent for fobs. */
    user: Type.Optional(Id),
    since: UnixMillis,
    reason: Type.Union([StateReasonSchema, Type.Literal("will")]),
    /** Key mode of the session that holds the target open. */
    mode: Type.Optional(
      Type.Union([
        Type.Literal("stored"),
        Type.Literal("relay"),
        Type.Literal("fob"),
        Type.Literal("unlock"),
      ]),
    ),
    /** Uses left of a count-limited key after this session opened: terminals show it (they cannot read events). */
    uses_left: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type TargetState = Static<typeof TargetState>;

export const EventType = Type.Union([
  Type.Literal("auth_established"),
  Type.Literal("auth_refused"),
  Type.Literal("session_ended"),
  Type.Literal("registry_applied"),
  Type.Literal("registry_refused"),
  /** The target applied a fleet revocation list: the key server's confirmation (`version`). */
  Type.Literal("revocations_applied"),
  Type.Literal("revocations_refused"),
  /** Outcome of a one-time unlock command (`cmd_id`). */
  Type.Literal("unlock_applied"),
  Type.Literal("unlock_refused"),
  /** Alarm: a terminal was locked out after too many refusals (`term`, `count`, `until`). */
  Type.Literal("lockout"),
  /** The wall clock fell behind the target's time (`reason: clock_untrusted`): time-limited keys are refused. */
  Type.Literal("clock_alarm"),
  /** The wall clock is back at the target's time: time-limited keys work again. */
  Type.Literal("clock_trusted"),
]);
export type EventType = Static<typeof EventType>;

/** targets/{tid}/events: one message per decision the key server or a dashboard may want. */
export const TargetEvent = Type.Object(
  {
    v: ProtocolVersion,
    tid: Id,
    ts: UnixMillis,
    type: EventType,
    reason: Type.Optional(Type.Union([RefusalReasonSchema, StateReasonSchema])),
    slot: Type.Optional(Id),
    term: Type.Optional(Id),
    /** The user behind `term`, only as a verified credential or relay frame names it. */
    user: Type.Optional(Id),
    gen: Type.Optional(Gen),
    version: Type.Optional(Version),
    uses_left: Type.Optional(Type.Integer({ minimum: 0 })),
    cmd_id: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9_-]{16,64}$" })),
    /**
     * `auth_refused`: refusals from this terminal since its last refusal event (absent: one); events are
     * coalesced to at most one per terminal per period. `lockout`: the refusals that tripped it.
     */
    count: Type.Optional(Type.Integer({ minimum: 1 })),
    /** `lockout`: Unix ms (the target's clock) when the lockout ends. */
    until: Type.Optional(UnixMillis),
  },
  { additionalProperties: false },
);
export type TargetEvent = Static<typeof TargetEvent>;

/** terminals/{term}/status: retained; the will publishes `offline`. */
export const LinkStatus = Type.Object(
  {
    v: ProtocolVersion,
    state: Type.Union([Type.Literal("online"), Type.Literal("offline")]),
    epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  },
  { additionalProperties: false },
);
export type LinkStatus = Static<typeof LinkStatus>;

/**
 * terminals/{term}/verdicts: why a target refused this terminal's own frames, or why its session ended.
 * Never retained (QoS 0): a verdict is about frames sent now. Coalesced like refusal events: at most one
 * per terminal per period (the latest reason).
 */
export const Verdict = Type.Object(
  {
    v: ProtocolVersion,
    tid: Id,
    reason: Type.Union([RefusalReasonSchema, StateReasonSchema]),
    ts: UnixMillis,
  },
  { additionalProperties: false },
);
export type Verdict = Static<typeof Verdict>;

/**
 * keyserver/status: a link status that also names the key server's active issuer key (`kid`), so a
 * client can tell a sparekey key server's broker from any other broker before it publishes anything.
 */
export const KeyserverStatus = Type.Object(
  {
    ...LinkStatus.properties,
    kid: Kid,
    /**
     * Every issuer key the key server still trusts (the active one and those a rotation keeps), so a
     * client that knows only the previous key still recognises its key server during the overlap.
     */
    kids: Type.Optional(Type.Array(Kid, { minItems: 1, maxItems: 16 })),
  },
  { additionalProperties: false },
);
export type KeyserverStatus = Static<typeof KeyserverStatus>;
