import type { KeyObject } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PublicKeyCache } from "../../common/keys.js";
import type { TargetStateFile } from "../../schemas/records.js";
import type { CredentialPayload, FramePayload } from "../../schemas/tokens.js";
import { TokenType } from "../../schemas/tokens.js";
import {
  type DecisionContext,
  type DecisionKeys,
  type DecisionView,
  decideFrame,
  decisionOrder,
  type Envelope,
  MAX_FRAME_BYTES,
  VerifiedCredentials,
} from "../../target/checks.js";
import { issuerKeyMap } from "../../target/issuer-tokens.js";
import { emptyState, TargetMemory } from "../../target/memory.js";
import { Checks } from "../../target/pipeline.js";
import { GENERATION, HEADER, SUBJECT_CHECKS } from "../../target/stages.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  type Overrides,
  rawToken,
  registryEntry,
} from "../helpers/issuer.js";

const TID = "lock-1";
const NONCE = "A".repeat(22);
const PREVIOUS = "B".repeat(22);
const NOW_MS = Date.UTC(2030, 0, 1);
const NOW_S = NOW_MS / 1000;

const issuer = makeIssuer();
const otherIssuer = makeIssuer();
const holder = makeHolder();
const otherHolder = makeHolder();

interface Setup {
  state?: Partial<TargetStateFile>;
  nowMs?: number;
  trusted?: boolean;
  sessions?: Record<string, { slot: string; gen: number }>;
  issuers?: Map<string, KeyObject>;
  timeZone?: string;
  keyserverOffline?: boolean;
  offlineTerminals?: string[];
  /** The frames topic's {term} (the sender); `term-1` unless said. */
  from?: string;
  lockedOut?: string[];
  /** Terminals whose status the target holds none of (every other one is online at epoch 1). */
  unknownTerminals?: string[];
}

function view(setup: Setup = {}): DecisionView {
  const memory = new TargetMemory({
    ...emptyState(TID),
    registry_version: 1,
    registry: [registryEntry("slot-1")],
    ...setup.state,
  });
  const sessions = setup.sessions ?? {};
  return {
    tid: TID,
    currentNonce: NONCE,
    previousNonce: PREVIOUS,
    nowMs: setup.nowMs ?? NOW_MS,
    clockTrusted: setup.trusted ?? true,
    timeZone: setup.timeZone ?? "UTC",
    keyserverOffline: setup.keyserverOffline ?? false,
    terminalOffline: (term) => setup.offlineTerminals?.includes(term) ?? false,
    terminalStatus: (term) =>
      setup.unknownTerminals?.includes(term)
        ? undefined
        : { v: 1, state: setup.offlineTerminals?.includes(term) ? "offline" : "online", epoch: 1 },
    session: (term) => (Object.hasOwn(sessions, term) ? sessions[term] : undefined),
    entry: (slot) => memory.entry(slot),
    revocation: (slot) => memory.revocation(slot),
    floor: (slot) => memory.floor(slot),
    lastSeq: (term) => memory.lastSeq(term),
    uses: (slot, gen) => memory.uses(slot, gen),
    firstUse: (slot, gen) => memory.firstUse(slot, gen),
    lockedOut: (term) => setup.lockedOut?.includes(term) ?? false,
  };
}

function keys(setup: Setup = {}): DecisionKeys {
  return {
    issuers: setup.issuers ?? issuerKeyMap([issuer.publicKey]),
    holders: new PublicKeyCache(),
    credentials: new VerifiedCredentials(),
  };
}

function credential(overrides: Overrides<CredentialPayload> = {}): string {
  return mintCredential(issuer, {
    holder: holder.publicKeyB64,
    nbf: NOW_S - 3600,
    iat: NOW_S - 3600,
    ...overrides,
  });
}

function payload(overrides: Partial<FramePayload> = {}): FramePayload {
  return {
    v: 1,
    tid: TID,
    slot: "slot-1",
    term: "term-1",
    nonce: NONCE,
    seq: 1,
    cred: credential(),
    ...overrides,
  };
}

function frame(overrides: Partial<FramePayload> = {}): Buffer {
  return Buffer.from(mintFrame(holder, payload(overrides)));
}

function decide(raw: Buffer, setup: Setup = {}, retain = false) {
  return decideFrame({ raw, retain, from: setup.from ?? "term-1" }, view(setup), keys(setup));
}

describe("the target's decision", () => {
  it("accepts a good frame and reports the facts that open a session", () => {
    expect(decide(frame())).toEqual({
      ok: true,
      frame: {
        typ: "sparekey-frame+jws",
        mode: "stored",
        term: "term-1",
        slot: "slot-1",
        gen: 1,
        seq: 1,
        exp: undefined,
        opensSession: true,
        usesLeft: undefined,
      },
    });
  });

  it("accepts a frame echoing the previous nonce", () => {
    expect(decide(frame({ nonce: PREVIOUS })).ok).toBe(true);
  });

  it("reports the earliest expiry and the uses left of a limited key", () => {
    const cred = credential({ exp: NOW_S + 600, max_uses: 5 });
    const setup: Setup = {
      state: {
        registry: [registryEntry("slot-1", { exp: NOW_S + 300, max_uses: 3 })],
        uses: { "slot-1:1": 1 },
      },
    };
    expect(decide(frame({ cred }), setup)).toMatchObject({
      ok: true,
      frame: { exp: NOW_S + 300, usesLeft: 1 },
    });
  });

  it("counts no use for a frame that continues the terminal's open session", () => {
    const cred = credential({ max_uses: 1 });
    const setup: Setup = {
      state: { uses: { "slot-1:1": 1 } },
      sessions: { "term-1": { slot: "slot-1", gen: 1 } },
    };
    expect(decide(frame({ cred }), setup)).toMatchObject({
      ok: true,
      frame: { opensSession: false, usesLeft: 0 },
    });
  });

  const refusals: [string, () => { raw: Buffer; setup?: Setup; retain?: boolean }, string][] = [
    ["a payload over 8 KiB", () => ({ raw: Buffer.alloc(MAX_FRAME_BYTES + 1, 0x41) }), "payload_too_large"],
    ["a retained frame", () => ({ raw: frame(), retain: true }), "retained_frame"],
    ["a payload that is not a JWS", () => ({ raw: Buffer.from("hello") }), "malformed"],
    [
      "a payload segment that is not JSON",
      () => ({
        raw: Buffer.from(rawToken({ alg: "EdDSA", typ: "sparekey-frame+jws" }, Buffer.from("{not json"))),
      }),
      "malformed",
    ],
    ["bad base64url", () => ({ raw: Buffer.from(`${mintFrame(holder, payload())}=`) }), "malformed"],
    [
      "alg none",
      () => ({ raw: Buffer.from(rawToken({ alg: "none", typ: "sparekey-frame+jws" }, payload())) }),
      "bad_alg",
    ],
    [
      // Regression: the unsecured form of RFC 7515 (empty third segment) was reported as malformed.
      "alg none with an empty signature segment",
      () => ({
        raw: Buffer.from(
          `${rawToken({ alg: "none", typ: "sparekey-frame+jws" }, payload()).split(".").slice(0, 2).join(".")}.`,
        ),
      }),
      "bad_alg",
    ],
    [
      "an EdDSA frame with an empty signature segment",
      () => ({ raw: Buffer.from(`${mintFrame(holder, payload()).split(".").slice(0, 2).join(".")}.`) }),
      "malformed",
    ],
    [
      "alg HS256",
      () => ({ raw: Buffer.from(rawToken({ alg: "HS256", typ: "sparekey-frame+jws" }, payload())) }),
      "bad_alg",
    ],
    [
      "a credential typ on the frames topic",
      () => ({
        raw: Buffer.from(
          rawToken(
            { alg: "EdDSA", typ: "sparekey-credential+jws", kid: holder.key.kid },
            payload(),
            holder.key,
          ),
        ),
      }),
      "wrong_typ",
    ],
    ["a frame with an unknown member", () => ({ raw: frameWith({ extra: 1 }) }), "schema_violation"],
    ["a frame for another target", () => ({ raw: frame({ tid: "lock-2" }) }), "wrong_target"],
    ["a stale nonce", () => ({ raw: frame({ nonce: "C".repeat(22) }) }), "stale_nonce"],
    [
      "a repeated seq",
      () => ({ raw: frame({ seq: 7 }), setup: { state: { seqs: { "term-1": 7 } } } }),
      "replayed_seq",
    ],
    [
      "a slot not in the registry",
      () => ({ raw: frame({ slot: "slot-9", cred: credential({ slot: "slot-9" }) }) }),
      "unknown_slot",
    ],
    [
      "a suspended slot",
      () => ({
        raw: frame(),
        setup: { state: { registry: [registryEntry("slot-1", { status: "suspended" })] } },
      }),
      "slot_suspended",
    ],
    [
      "a revoked slot",
      () => ({
        raw: frame(),
        setup: { state: { registry: [registryEntry("slot-1", { status: "revoked" })] } },
      }),
      "slot_revoked",
    ],
    [
      "a slot in the fleet revocation list",
      () => ({ raw: frame(), setup: { state: { revoked: [{ slot: "slot-1" }] } } }),
      "slot_revoked",
    ],
    ["a credential that does not decode", () => ({ raw: frame({ cred: "aaa.bbb.ccc" }) }), "bad_credential"],
    [
      "a credential for another terminal",
      () => ({ raw: frame({ cred: credential({ term: "term-2" }) }) }),
      "credential_mismatch",
    ],
    [
      "a relay credential used to sign frames",
      () => ({ raw: frame({ cred: credential({ mode: "relay", holder: undefined }) }) }),
      "credential_mismatch",
    ],
    [
      "a credential not naming this target",
      () => ({ raw: frame({ cred: credential({ tids: ["lock-2"] }) }) }),
      "credential_wrong_target",
    ],
    [
      "a generation below the registry's min_gen",
      () => ({ raw: frame(), setup: { state: { registry: [registryEntry("slot-1", { min_gen: 2 })] } } }),
      "old_generation",
    ],
    [
      "a generation below the slot's floor",
      () => ({ raw: frame(), setup: { state: { floors: { "slot-1": 2 } } } }),
      "old_generation",
    ],
    [
      "a generation below the fleet's below_gen",
      () => ({ raw: frame(), setup: { state: { revoked: [{ slot: "slot-1", below_gen: 2 }] } } }),
      "old_generation",
    ],
    [
      "a credential signed by another issuer",
      () => ({ raw: frame({ cred: mintCredential(otherIssuer, { holder: holder.publicKeyB64 }) }) }),
      "unknown_issuer",
    ],
    [
      "a credential whose issuer signature does not verify",
      () => ({
        raw: frame({
          cred: mintCredential(
            { ...otherIssuer, key: { ...otherIssuer.key, kid: issuer.key.kid } },
            { holder: holder.publicKeyB64, nbf: NOW_S - 3600 },
          ),
        }),
      }),
      "bad_credential_signature",
    ],
    [
      "a time-limited credential on an untrusted clock",
      () => ({ raw: frame({ cred: credential({ exp: NOW_S + 600 }) }), setup: { trusted: false } }),
      "clock_untrusted",
    ],
    [
      "a time-limited registry entry on an untrusted clock",
      () => ({
        raw: frame(),
        setup: { trusted: false, state: { registry: [registryEntry("slot-1", { nbf: NOW_S - 10 })] } },
      }),
      "clock_untrusted",
    ],
    [
      "a credential valid only in more than 60 s",
      () => ({ raw: frame({ cred: credential({ nbf: NOW_S + 61 }) }) }),
      "not_yet_valid",
    ],
    [
      "a registry entry not yet valid",
      () => ({ raw: frame(), setup: { state: { registry: [registryEntry("slot-1", { nbf: NOW_S + 1 })] } } }),
      "not_yet_valid",
    ],
    ["an expired credential", () => ({ raw: frame({ cred: credential({ exp: NOW_S }) }) }), "expired"],
    [
      "an expired registry entry",
      () => ({ raw: frame(), setup: { state: { registry: [registryEntry("slot-1", { exp: NOW_S - 1 })] } } }),
      "expired",
    ],
    [
      "a new session when the credential's uses are spent",
      () => ({
        raw: frame({ cred: credential({ max_uses: 2 }) }),
        setup: { state: { uses: { "slot-1:1": 2 } } },
      }),
      "uses_exhausted",
    ],
    [
      "a new session when the registry's uses are spent",
      () => ({
        raw: frame(),
        setup: { state: { registry: [registryEntry("slot-1", { max_uses: 1 })], uses: { "slot-1:1": 1 } } },
      }),
      "uses_exhausted",
    ],
    [
      "a frame signed by another key than the holder's",
      () => ({ raw: Buffer.from(mintFrame(otherHolder, payload())) }),
      "bad_frame_signature",
    ],
    [
      "a frame whose term is not the sender's topic id",
      () => ({ raw: frame(), setup: { from: "term-2" } }),
      "term_mismatch",
    ],
    [
      "a good frame from a locked-out terminal",
      () => ({ raw: frame(), setup: { lockedOut: ["term-1"] } }),
      "locked_out",
    ],
  ];

  for (const [what, make, reason] of refusals) {
    it(`refuses ${what} with ${reason}`, () => {
      const { raw, setup, retain } = make();
      const d = decide(raw, setup, retain);
      expect(d.ok ? "accepted" : d.reason).toBe(reason);
    });
  }

  it("names the slot and terminal of a refused frame once its payload is known", () => {
    expect(decide(frame({ nonce: "C".repeat(22) }))).toEqual({
      ok: false,
      reason: "stale_nonce",
      check: "nonce",
      slot: "slot-1",
      term: "term-1",
    });
  });

  it("reports the cheaper check first: a stale nonce on a badly signed frame is stale_nonce", () => {
    const raw = Buffer.from(mintFrame(otherHolder, payload({ nonce: "C".repeat(22) })));
    expect(decide(raw)).toMatchObject({ ok: false, reason: "stale_nonce" });
  });

  // Regression (Frames on a topic that names the sender): a frame naming a victim's term, sent on the
  // sender's own topic, was judged as the victim's (seq line, session, lockout).
  it("refuses a frame naming another terminal than its topic with term_mismatch before any other subject check", () => {
    const raw = Buffer.from(mintFrame(otherHolder, payload({ tid: "lock-2", nonce: "C".repeat(22) })));
    expect(decide(raw, { from: "mallory" })).toEqual({
      ok: false,
      reason: "term_mismatch",
      check: "term",
      slot: "slot-1",
      term: "term-1",
    });
  });

  it("refuses a locked-out terminal before the target, nonce or any signature, and only that terminal", () => {
    const raw = Buffer.from(mintFrame(otherHolder, payload({ tid: "lock-2", nonce: "C".repeat(22) })));
    expect(decide(raw, { lockedOut: ["term-1"] })).toMatchObject({ reason: "locked_out", check: "lockout" });
    expect(decide(frame(), { lockedOut: ["term-2"] }).ok).toBe(true);
  });

  it("reports a retained frame before its malformed content", () => {
    expect(decide(Buffer.from("junk"), {}, true)).toEqual({
      ok: false,
      reason: "retained_frame",
      check: "not_retained",
    });
  });

  it("reports a revoked slot before an old generation", () => {
    const setup: Setup = {
      state: { registry: [registryEntry("slot-1", { status: "revoked", min_gen: 5 })] },
    };
    expect(decide(frame(), setup)).toMatchObject({ ok: false, reason: "slot_revoked" });
  });

  it("reports the key's own limits before its line: an expired key of an offline terminal is expired", () => {
    const raw = frame({ cred: credential({ exp: NOW_S }) });
    expect(decide(raw, { offlineTerminals: ["term-1"] })).toMatchObject({
      reason: "expired",
      check: "expiry",
    });
    expect(decide(frame(), { offlineTerminals: ["term-1"] })).toMatchObject({
      reason: "terminal_offline",
      check: "line_status",
    });
  });

  it("verifies the holder signature last: a badly signed frame of an offline terminal is terminal_offline", () => {
    const raw = Buffer.from(mintFrame(otherHolder, payload()));
    expect(decide(raw, { offlineTerminals: ["term-1"] })).toMatchObject({ reason: "terminal_offline" });
  });

  it("names, in order, every check a stored frame and a relay frame pass", () => {
    const envelope = [
      "size",
      "not_retained",
      "envelope",
      "alg",
      "signature_length",
      "typ",
      "header",
      "schema",
    ];
    const subject = ["term", "lockout", "tid", "nonce", "seq", "slot_known", "slot_status"];
    const limits = ["clock", "not_before", "expiry"];
    expect(decisionOrder(TokenType.frame)).toEqual([
      ...envelope,
      ...subject,
      "credential_decodes",
      "credential_matches",
      "credential_target",
      "generation",
      "issuer_known",
      "issuer_signature",
      ...limits,
      "schedule",
      "uses",
      "line_status",
      "holder_signature",
    ]);
    expect(decisionOrder(TokenType.relay)).toEqual([
      ...envelope,
      ...subject,
      "generation",
      ...limits,
      "uses",
      "line_status",
      "relay_epoch",
      "issuer_known",
      "issuer_signature",
    ]);
  });

  it("does not compile a check placed before the stage that fills its input", () => {
    const early = Checks.over<Envelope, DecisionContext>().stage(HEADER);
    // @ts-expect-error the generation check reads the key's gen, which no stage has filled in yet
    early.check(GENERATION);
    // @ts-expect-error the subject checks read the payload, which only the schema stage gives
    early.check(...SUBJECT_CHECKS);
    expect(early.names).toEqual(["header"]);
  });

  it("verifies a session's credential once and reuses the verification for later frames", () => {
    const v = view();
    const k = keys();
    const cred = credential();
    expect(decideFrame({ raw: frame({ cred, seq: 1 }), retain: false, from: "term-1" }, v, k).ok).toBe(true);
    // With the issuer key gone, only the cache can make the second frame pass the issuer checks.
    const withoutIssuers: DecisionKeys = { ...k, issuers: new Map() };
    expect(
      decideFrame({ raw: frame({ cred, seq: 2 }), retain: false, from: "term-1" }, v, withoutIssuers).ok,
    ).toBe(true);
    expect(
      decideFrame(
        { raw: frame({ cred: credential(), seq: 3 }), retain: false, from: "term-1" },
        v,
        withoutIssuers,
      ),
    ).toMatchObject({
      ok: false,
      reason: "unknown_issuer",
    });
  });

  it("does not refuse an untimed key on an untrusted clock that reads before its nbf", () => {
    expect(decide(frame(), { trusted: false, nowMs: Date.UTC(1970, 0, 2) }).ok).toBe(true);
  });
});

function frameWith(extra: Record<string, unknown>): Buffer {
  return Buffer.from(
    rawToken(
      { alg: "EdDSA", typ: "sparekey-frame+jws", kid: holder.key.kid },
      { ...payload(), ...extra },
      holder.key,
    ),
  );
}
