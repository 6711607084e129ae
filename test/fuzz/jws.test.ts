import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeToken, TokenError, type TokenErrorCode, verifyToken } from "../../common/jws.js";
import { TokenType, type TokenTypeValue } from "../../schemas/tokens.js";
import { issuerKeyMap } from "../../target/issuer-tokens.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRegistry,
  mintRelay,
  mintRevocations,
  mintUnlock,
  rawToken,
} from "../helpers/issuer.js";
import { FC_PARAMS, FUZZ_TIMEOUT_MS, mutateAll, mutations } from "./mutate.js";

const TOKEN_CODES: readonly TokenErrorCode[] = [
  "token_malformed",
  "token_bad_alg",
  "token_wrong_typ",
  "token_unknown_kid",
  "token_bad_signature",
  "token_bad_payload",
];

const issuer = makeIssuer();
const otherIssuer = makeIssuer();
const holder = makeHolder();
const issuers = issuerKeyMap([issuer.publicKey]);
const NONCE = "N".repeat(22);

const credential = mintCredential(issuer, { holder: holder.publicKeyB64, max_uses: 1 });
/** One valid token of every type, each with the key that verifies it. */
const VALID: readonly { typ: TokenTypeValue; token: string; keys: typeof issuers }[] = [
  { typ: TokenType.credential, token: credential, keys: issuers },
  {
    typ: TokenType.frame,
    token: mintFrame(holder, {
      v: 1,
      tid: "lock-1",
      slot: "slot-1",
      term: "term-1",
      nonce: NONCE,
      seq: 1,
      cred: credential,
    }),
    keys: new Map([[holder.key.kid, holder.key.publicKey]]),
  },
  { typ: TokenType.relay, token: mintRelay(issuer, { tid: "lock-1", nonce: NONCE }), keys: issuers },
  { typ: TokenType.registry, token: mintRegistry(issuer, "lock-1"), keys: issuers },
  {
    typ: TokenType.revocations,
    token: mintRevocations(issuer, { revoked: [{ slot: "s", below_gen: 2 }] }),
    keys: issuers,
  },
  { typ: TokenType.unlock, token: mintUnlock(issuer, { tid: "lock-1", nonce: NONCE }), keys: issuers },
];
const DONORS = [
  ...VALID.map((v) => v.token),
  mintRegistry(otherIssuer, "lock-1"),
  rawToken({ alg: "none", typ: TokenType.frame, kid: issuer.key.kid }, { v: 1 }),
];
const KIDS = [issuer.key.kid, otherIssuer.key.kid, holder.key.kid];

/** What a verifier did with a token: verified, or the TokenError code; anything else is a failure. */
function outcome(run: () => unknown): "verified" | TokenErrorCode {
  try {
    run();
    return "verified";
  } catch (err) {
    if (err instanceof TokenError) return err.tokenCode;
    throw err;
  }
}

describe("fuzz: the token decoder and verifier", () => {
  it("each base token verifies unmutated (the properties below start from genuine tokens)", () => {
    expect(VALID.map((v) => outcome(() => verifyToken(v.token, v.typ, (kid) => v.keys.get(kid))))).toEqual(
      VALID.map(() => "verified"),
    );
  });

  it("never verifies a mutated token and throws nothing but a TokenError with a known code", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(fc.nat({ max: VALID.length - 1 }), mutations(KIDS, DONORS.length), (which, ms) => {
        const base = VALID[which];
        if (!base) return;
        const token = mutateAll(base.token, ms, DONORS);
        fc.pre(token !== base.token);
        for (const typ of Object.values(TokenType)) {
          const verified = outcome(() => verifyToken(token, typ, (kid) => base.keys.get(kid)));
          expect(TOKEN_CODES).toContain(verified);
          const decoded = outcome(() => decodeToken(token, typ));
          expect([...TOKEN_CODES, "verified"]).toContain(decoded);
        }
      }),
      FC_PARAMS,
    );
  });

  it("throws only TokenError for any string at all", { timeout: FUZZ_TIMEOUT_MS }, () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc
        .tuple(fc.string({ maxLength: 60 }), fc.string({ maxLength: 60 }), fc.string({ maxLength: 90 }))
        .map((parts) => parts.join(".")),
      fc
        .tuple(fc.base64String({ maxLength: 80 }), fc.base64String({ maxLength: 80 }))
        .map(([a, b]) => `${a}.${b}.${"A".repeat(86)}`),
    );
    fc.assert(
      fc.property(text, fc.constantFrom(...Object.values(TokenType)), (token, typ) => {
        expect(TOKEN_CODES).toContain(outcome(() => verifyToken(token, typ, (kid) => issuers.get(kid))));
      }),
      FC_PARAMS,
    );
  });
});
