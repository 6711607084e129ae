import { type Static, Type } from "@sinclair/typebox";
import { CompactJws, Gen, Id, Kid, Seq, UnixSeconds, Version } from "./common.js";
import { RefusalReasonSchema, StateReasonSchema } from "./reasons.js";
import { MAX_ISSUER_KEYS, RegistryEntry, RegistryIssuer, RevocationEntry } from "./tokens.js";

/** The issuer key on disk (mode 0600). */
export const IssuerKeyFile = Type.Object(
  {
    v: Type.Literal(1),
    keys: Type.Array(
      Type.Object(
        {
          kid: Kid,
          seed: Type.String({ pattern: "^[A-Za-z0-9_-]{43}$" }),
          created: UnixSeconds,
          /** Set by `admin issuer retire`: the key no longer signs, verifies or goes out in registries. */
          retired: Type.Optional(UnixSeconds),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
    /** kid of the key that signs now; the others still verify (rotation). */
    active: Kid,
  },
  { additionalProperties: false },
);
export type IssuerKeyFile = Static<typeof IssuerKeyFile>;

/** A target's persisted state: written whole, atomically, before the target acts on it. */
export const TargetStateFile = Type.Object(
  {
    v: Type.Literal(1),
    tid: Id,
    registry_version: Version,
    registry: Type.Array(RegistryEntry),
    revocations_version: Version,
    revoked: Type.Array(RevocationEntry),
    /** slot -> highest generation seen or required: the floor. */
    floors: Type.Record(Id, Gen, { additionalProperties: false }),
    /** terminal -> highest accepted seq. */
    seqs: Type.Record(Id, Seq, { additionalProperties: false }),
    /** `${slot}:${gen}` -> uses counted. */
    uses: Type.Record(
      Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}:[0-9]{1,10}$" }),
      Type.Integer({ minimum: 0 }),
      { additionalProperties: false },
    ),
    /** Highest wall-clock time seen (Unix ms): the clock is never trusted below it. */
    time_floor_ms: Type.Integer({ minimum: 0 }),
    /** `${slot}:${gen}` -> Unix ms of the first accepted use (first-use expiry starts there). */
    first_use: Type.Optional(
      Type.Record(
        Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}:[0-9]{1,10}$" }),
        Type.Integer({ minimum: 0 }),
        {
          additionalProperties: false,
        },
      ),
    ),
    /** Locked-out terminals: term -> Unix ms (target's clock) when the lockout ends. */
    lockouts: Type.Optional(Type.Record(Id, Type.Integer({ minimum: 0 }), { additionalProperties: false })),
    /**
     * Issuer keys learned from the latest applied registry that listed `issuers`; the target trusts
     * these and its config's `issuer_keys`.
     */
    issuers: Type.Optional(Type.Array(RegistryIssuer, { maxItems: MAX_ISSUER_KEYS })),
    /** Applied unlock commands: cmd_id -> their exp (Unix s), kept until then so a replay is refused. */
    unlocks: Type.Optional(
      Type.Record(Type.String({ pattern: "^[A-Za-z0-9_-]{16,64}$" }), Type.Integer({ minimum: 0 }), {
        additionalProperties: false,
      }),
    ),
  },
  { additionalProperties: false },
);
export type TargetStateFile = Static<typeof TargetStateFile>;

/** A terminal's key pair on disk (mode 0600). The private key never leaves the terminal. */
export const TerminalKeyFile = Type.Object(
  { v: Type.Literal(1), term: Id, seed: Type.String({ pattern: "^[A-Za-z0-9_-]{43}$" }) },
  { additionalProperties: false },
);
export type TerminalKeyFile = Static<typeof TerminalKeyFile>;

/** Credentials a terminal downloaded, by slot; and its last seq, so frames stay monotonic across restarts. */
export const TerminalWallet = Type.Object(
  {
    v: Type.Literal(1),
    term: Id,
    credentials: Type.Record(
      Id,
      Type.Object(
        {
          token: CompactJws,
          tids: Type.Array(Id),
          gen: Gen,
          /** A target's verdict said this credential is dead (`revoked` class): not picked by default. */
          revoked: Type.Optional(Type.Union([RefusalReasonSchema, StateReasonSchema])),
        },
        { additionalProperties: false },
      ),
      { additionalProperties: false },
    ),
    last_seq: Seq,
  },
  { additionalProperties: false },
);
export type TerminalWallet = Static<typeof TerminalWallet>;

/**
 * The newest fleet revocation list and target registries a terminal fetched while online, by target,
 * to carry to targets cut off from the key server (mode 0600).
 */
export const TerminalCarried = Type.Object(
  {
    v: Type.Literal(1),
    term: Id,
    revocations: Type.Optional(CompactJws),
    registries: Type.Record(Id, CompactJws, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type TerminalCarried = Static<typeof TerminalCarried>;
