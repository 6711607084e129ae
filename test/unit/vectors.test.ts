import type { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TokenError, verifyToken } from "../../common/jws.js";
import { kidOf, PublicKeyCache, signingKeyFromSeed } from "../../common/keys.js";
import { TokenType } from "../../schemas/tokens.js";
import { type AcceptVector, buildVectors, type RejectVector, VECTORS_PATH } from "../vectors/generate.js";

const committed = JSON.parse(readFileSync(VECTORS_PATH, "utf8")) as unknown;
const vectors = buildVectors();
const accepts = vectors.filter((v): v is AcceptVector => v.expect === "accept");
const rejects = vectors.filter((v): v is RejectVector => v.expect === "reject");
const cache = new PublicKeyCache();

/** A verifier that knows exactly one key, found by its RFC 7638 thumbprint. */
function onlyKey(publicKey: string): (kid: string) => KeyObject | undefined {
  const key = cache.get(publicKey);
  return (kid) => (kid === kidOf(publicKey) ? key : undefined);
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TokenError) return err.tokenCode;
    throw err;
  }
  return "accepted";
}

describe("protocol test vectors", () => {
  it("the committed file is exactly what the generator produces", () => {
    expect(committed).toEqual(vectors);
  });

  it("cover every token typ", () => {
    expect(new Set(accepts.map((v) => v.typ))).toEqual(new Set(Object.values(TokenType)));
  });

  it("cover every token error code a verifier with the right key can meet", () => {
    expect(new Set(rejects.map((v) => v.reason))).toEqual(
      new Set([
        "token_malformed",
        "token_bad_alg",
        "token_wrong_typ",
        "token_unknown_kid",
        "token_bad_signature",
        "token_bad_payload",
      ]),
    );
  });

  it("have unique names", () => {
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
  });

  describe.each(accepts.map((v) => [v.name, v] as const))("accept: %s", (_name, v) => {
    it("verifies and yields the payload", () => {
      const decoded = verifyToken(v.token, v.typ, onlyKey(v.public_key));
      expect(decoded.payload).toEqual(v.payload);
      expect(decoded.header).toEqual({ alg: "EdDSA", typ: v.typ, kid: kidOf(v.public_key) });
    });

    it("derives its public key and token from the seed", () => {
      const key = signingKeyFromSeed(Buffer.from(v.seed_hex, "hex"));
      expect(key.publicKeyB64).toBe(v.public_key);
      expect(v.token.startsWith(`${v.protected_header}.`)).toBe(true);
      expect(v.token.split(".")[1]).toBe(Buffer.from(JSON.stringify(v.payload)).toString("base64url"));
    });
  });

  describe.each(rejects.map((v) => [v.name, v] as const))("reject: %s", (_name, v) => {
    it(`is refused with ${v.reason}`, () => {
      expect(refusal(() => verifyToken(v.token, v.typ, onlyKey(v.public_key)))).toBe(v.reason);
    });
  });
});
