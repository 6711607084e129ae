import { type Static, Type } from "@sinclair/typebox";

/** The messages between the flood benchmark and its attacker processes (JSON over the fork IPC channel). */

export const ATTACK_KINDS = ["bad-logins", "rpc-flood", "bad-frames"] as const;
export type AttackKind = (typeof ATTACK_KINDS)[number];

const Text = Type.String({ minLength: 1, maxLength: 4096 });

const Attacker = Type.Object(
  {
    /** Loopback source address to connect from (127.x.y.z), or none for the OS's choice. */
    address: Type.Optional(Text),
    /** A real account of the attacker's own, for the kinds that need to be logged in. */
    serial: Type.Optional(Text),
    user: Type.Optional(Text),
    password: Type.Optional(Text),
    /** Terminal dir for the attacker's key and downloaded credential (bad-frames). */
    dir: Type.Optional(Text),
  },
  { additionalProperties: false },
);
export type Attacker = Static<typeof Attacker>;

export const AttackJob = Type.Object(
  {
    type: Type.Literal("job"),
    kind: Type.Union(ATTACK_KINDS.map((k) => Type.Literal(k))),
    url: Text,
    prefix: Text,
    tid: Text,
    /** The legitimate user: bad logins name its login terminal and user, bad frames its key terminal and slot. */
    victim: Type.Object(
      { serial: Text, user: Text, term: Text, slot: Text },
      { additionalProperties: false },
    ),
    attackers: Type.Array(Attacker, { minItems: 1, maxItems: 10_000 }),
  },
  { additionalProperties: false },
);
export type AttackJob = Static<typeof AttackJob>;

/** Sent once every process is ready: attack for this long, then report. */
export const AttackGo = Type.Object(
  { type: Type.Literal("go"), ms: Type.Integer({ minimum: 1, maximum: 3_600_000 }) },
  { additionalProperties: false },
);
export type AttackGo = Static<typeof AttackGo>;

const Count = Type.Integer({ minimum: 0 });

export const AttackCounts = Type.Object(
  {
    /** Requests put on the wire: CONNECTs, RPC requests, frames. */
    sent: Count,
    /** Answers seen: refused CONNACKs, RPC replies (any); frames get none. */
    answered: Count,
    /** Of those, answers that said no because of a limit (CONNACK 3, `rate_limited`). */
    limited: Count,
    /** Attacker connections the broker closed, or that failed to connect. */
    dropped: Count,
    /** Anything unexpected (a bad login that was accepted, a timeout). */
    errors: Count,
  },
  { additionalProperties: false },
);
export type AttackCounts = Static<typeof AttackCounts>;

export const AttackerMessage = Type.Union([
  Type.Object({ type: Type.Literal("ready") }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal("done"), counts: AttackCounts }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal("failed"), message: Type.String() }, { additionalProperties: false }),
]);
export type AttackerMessage = Static<typeof AttackerMessage>;

export function zeroCounts(): AttackCounts {
  return { sent: 0, answered: 0, limited: 0, dropped: 0, errors: 0 };
}

export function addCounts(a: AttackCounts, b: AttackCounts): AttackCounts {
  return {
    sent: a.sent + b.sent,
    answered: a.answered + b.answered,
    limited: a.limited + b.limited,
    dropped: a.dropped + b.dropped,
    errors: a.errors + b.errors,
  };
}
