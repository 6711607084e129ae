import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PublicKeyCache } from "../../common/keys.js";
import { REFUSAL_REASONS } from "../../schemas/reasons.js";
import type { CredentialPayload, FramePayload } from "../../schemas/tokens.js";
import {
  type Decision,
  type DecisionKeys,
  type DecisionView,
  decideFrame,
  MAX_FRAME_BYTES,
  VerifiedCredentials,
} from "../../target/checks.js";
import { issuerKeyMap } from "../../target/issuer-tokens.js";
import { emptyState, TargetMemory } from "../../target/memory.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRelay,
  type Overrides,
  rawToken,
  registryEntry,
} from "../helpers/issuer.js";
import { FC_PARAMS, FUZZ_TIMEOUT_MS, mutateAll, mutations } from "./mutate.js";

/**
 * The target's decision under attack: frames that start valid and are mutated, re-signed by a
 * stranger, or carry a mutated credential that the genuine holder signs. Nothing but a frame equal to
 * one validly issued may open the lock, and nothing throws.
 */

const TID = "lock-1";
const NONCE = "A".repeat(22);
const PREVIOUS = "B".repeat(22);
const NOW_MS = Date.UTC(2030, 0, 1);
const NOW_S = NOW_MS / 1000;

const issuer = makeIssuer();
const otherIssuer = makeIssuer();
const holder = makeHolder();
const stranger = makeHolder();

/** A target holding slot-1 (stored keys) and slot-2 (relay, count-limited), nothing used yet. */
function realisticView(): DecisionView {
  const memory = new TargetMemory({
    ...emptyState(TID),
    registry_version: 3,
    registry: [registryEntry("slot-1"), registryEntry("slot-2", { max_uses: 5, exp: NOW_S + 3600 })],
    seqs: { "term-1": 10 },
  });
  return {
    tid: TID,
    currentNonce: NONCE,
    previousNonce: PREVIOUS,
    nowMs: NOW_MS,
    clockTrusted: true,
    timeZone: "Europe/Berlin",
    keyserverOffline: false,
    lockedOut: () => false,
    terminalStatus: () => ({ v: 1, state: "online", epoch: 1 }),
    terminalOffline: () => false,
    session: () => undefined,
    entry: (slot) => memory.entry(slot),
    revocation: (slot) => memory.revocation(slot),
    floor: (slot) => memory.floor(slot),
    lastSeq: (term) => memory.lastSeq(term),
    uses: (slot, gen) => memory.uses(slot, gen),
    firstUse: (slot, gen) => memory.firstUse(slot, gen),
  };
}

const VIEW = realisticView();
/** Shared across runs, as on a live target: a cache remembers verifications, it never decides. */
const KEYS: DecisionKeys = {
  issuers: issuerKeyMap([issuer.publicKey]),
  holders: new PublicKeyCache(),
  credentials: new VerifiedCredentials(),
};

function credential(overrides: Overrides<CredentialPayload> = {}): string {
  return mintCredential(issuer, {
    holder: holder.publicKeyB64,
    tids: [TID, "lock-2"],
    nbf: NOW_S - 3600,
    iat: NOW_S - 3600,
    ...overrides,
  });
}

const CREDENTIALS = [
  credential(),
  credential({ max_uses: 3, exp: NOW_S + 600, first_use_ttl_s: 300 }),
  credential({ mode: "fob", schedule: [{ days: [1, 2, 3, 4, 5, 6, 7], start: "00:00", end: "24:00" }] }),
];

function framePayload(cred: string, overrides: Partial<FramePayload> = {}): FramePayload {
  return { v: 1, tid: TID, slot: "slot-1", term: "term-1", nonce: NONCE, seq: 11, cred, ...overrides };
}

/** Frames the target must accept as they are: the base of every mutation. */
const VALID = [
  ...CREDENTIALS.map((c) => mintFrame(holder, framePayload(c))),
  mintFrame(holder, framePayload(CREDENTIALS[0] ?? "", { nonce: PREVIOUS, seq: 2 ** 40 })),
  mintRelay(issuer, { tid: TID, nonce: NONCE, slot: "slot-2", term: "term-2", seq: 1, iat: NOW_S }),
];
const VALID_SET = new Set(VALID);
const DONORS = [
  ...VALID,
  ...CREDENTIALS,
  mintRelay(otherIssuer, { tid: TID, nonce: NONCE, slot: "slot-2", term: "term-2" }),
  mintFrame(stranger, framePayload(CREDENTIALS[0] ?? "")),
  rawToken(
    { alg: "none", typ: "sparekey-frame+jws", kid: holder.key.kid },
    framePayload(CREDENTIALS[0] ?? ""),
  ),
];
const KIDS = [issuer.key.kid, otherIssuer.key.kid, holder.key.kid, stranger.key.kid];

/**
 * The sender the broker would vouch for: the term the token names when it names one, so that a
 * mutation is judged by the checks after `term` too (a mismatch is refused early either way).
 */
function senderOf(raw: Buffer): string {
  const body = raw.toString("utf8").split(".")[1] ?? "";
  try {
    const term: unknown = (JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as { term?: unknown })
      .term;
    return typeof term === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(term) ? term : "term-1";
  } catch {
    return "term-1";
  }
}

function decide(token: string | Buffer, retain = false): Decision {
  const raw = Buffer.isBuffer(token) ? token : Buffer.from(token, "utf8");
  return decideFrame({ raw, retain, from: senderOf(raw) }, VIEW, KEYS);
}

/** A refusal names a reason of the closed list; an acceptance is checked by each property. */
function expectKnownRefusal(decision: Decision): void {
  if (!decision.ok) expect(REFUSAL_REASONS).toContain(decision.reason);
}

const pickValid = fc.nat({ max: VALID.length - 1 }).map((i) => VALID[i] ?? "");

describe("fuzz: the target's decision", () => {
  it("accepts every base frame as it was issued", () => {
    expect(VALID.map((t) => decide(t).ok)).toEqual(VALID.map(() => true));
  });

  it("opens for no mutated frame: an acceptance is always a frame exactly as issued", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    const reasons = new Set<string>();
    fc.assert(
      fc.property(pickValid, mutations(KIDS, DONORS.length), (base, ms) => {
        const token = mutateAll(base, ms, DONORS);
        const decision = decide(token);
        expectKnownRefusal(decision);
        if (decision.ok) expect(VALID_SET.has(token)).toBe(true);
        else reasons.add(decision.reason);
      }),
      FC_PARAMS,
    );
    // The mutations reach every stage, up to the last and dearest check.
    expect([...reasons]).toEqual(
      expect.arrayContaining([
        "malformed",
        "bad_alg",
        "wrong_typ",
        "schema_violation",
        "bad_frame_signature",
      ]),
    );
  });

  it("opens for no frame the genuine holder signs around a mutated credential", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    const reasons = new Set<string>();
    const pickCred = fc.nat({ max: CREDENTIALS.length - 1 }).map((i) => CREDENTIALS[i] ?? "");
    fc.assert(
      fc.property(pickCred, mutations(KIDS, DONORS.length), (base, ms) => {
        const cred = mutateAll(base, ms, DONORS);
        let token: string;
        try {
          token = mintFrame(holder, framePayload(cred));
        } catch {
          return; // a credential the signer itself cannot encode never reaches the wire
        }
        const decision = decide(token);
        expectKnownRefusal(decision);
        if (decision.ok) expect(CREDENTIALS).toContain(cred);
        else reasons.add(decision.reason);
      }),
      FC_PARAMS,
    );
    expect([...reasons]).toEqual(expect.arrayContaining(["bad_credential", "bad_credential_signature"]));
  });

  it("opens for no frame a stranger signs, whatever it carries", { timeout: FUZZ_TIMEOUT_MS }, () => {
    const fields = fc.record({
      slot: fc.constantFrom("slot-1", "slot-2", "slot-3"),
      term: fc.constantFrom("term-1", "term-2", "term-x"),
      nonce: fc.constantFrom(NONCE, PREVIOUS, "C".repeat(22)),
      seq: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
      cred: fc.constantFrom(...CREDENTIALS),
    });
    fc.assert(
      fc.property(fields, (f) => {
        const decision = decide(mintFrame(stranger, framePayload(f.cred, f)));
        expectKnownRefusal(decision);
        expect(decision.ok).toBe(false);
      }),
      FC_PARAMS,
    );
  });

  it("opens for a frame the genuine holder signs exactly when its fields answer this target now", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    const LAST_SEQ = 10; // term-1's persisted high-water mark in the view
    const fields = fc.record({
      tid: fc.constantFrom(TID, "lock-2", "lock-10"),
      slot: fc.constantFrom("slot-1", "slot-2", "slot-3"),
      term: fc.constantFrom("term-1", "term-2"),
      nonce: fc.constantFrom(NONCE, PREVIOUS, "C".repeat(22)),
      seq: fc.oneof(
        fc.constantFrom(0, LAST_SEQ - 1, LAST_SEQ, LAST_SEQ + 1, Number.MAX_SAFE_INTEGER),
        fc.nat({ max: 2 * LAST_SEQ }),
      ),
    });
    fc.assert(
      fc.property(fields, (f) => {
        const decision = decide(mintFrame(holder, framePayload(CREDENTIALS[0] ?? "", f)));
        expectKnownRefusal(decision);
        // The credential names slot-1, term-1 and lists lock-1 among its targets.
        const answers =
          f.tid === TID &&
          f.slot === "slot-1" &&
          f.term === "term-1" &&
          (f.nonce === NONCE || f.nonce === PREVIOUS) &&
          f.seq > LAST_SEQ;
        expect(decision.ok).toBe(answers);
      }),
      FC_PARAMS,
    );
  });

  it("refuses every retained frame, even a valid one", { timeout: FUZZ_TIMEOUT_MS }, () => {
    fc.assert(
      fc.property(pickValid, mutations(KIDS, DONORS.length), fc.boolean(), (base, ms, mutated) => {
        const raw = Buffer.from(mutated ? mutateAll(base, ms, DONORS) : base, "utf8");
        // Size is the one check before it.
        const reason = raw.length > MAX_FRAME_BYTES ? "payload_too_large" : "retained_frame";
        expect(decide(raw, true)).toMatchObject({ ok: false, reason });
      }),
      FC_PARAMS,
    );
  });

  it("never throws on arbitrary bytes and refuses them with a known reason", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc.string({ unit: "binary", maxLength: 300 }).map((s) => Buffer.from(s, "utf8")),
      fc.uint8Array({ minLength: 8190, maxLength: 8200 }).map((a) => Buffer.from(a)),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const decision = decide(raw);
        expectKnownRefusal(decision);
        expect(decision.ok).toBe(false);
      }),
      FC_PARAMS,
    );
  });
});
