import { createHash, createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeToken, encodeProtectedHeader, signToken, TokenError, verifyToken } from "../../common/jws.js";
import {
  kidOf,
  PublicKeyCache,
  rawPublicKeyB64,
  type SigningKey,
  signingKeyFromSeed,
} from "../../common/keys.js";
import { type CredentialPayload, TokenType } from "../../schemas/tokens.js";

const issuer = signingKeyFromSeed(Buffer.alloc(32, 0x11));
const other = signingKeyFromSeed(Buffer.alloc(32, 0x22));
const CRED = TokenType.credential;

const payload: CredentialPayload = {
  v: 1,
  slot: "front-door",
  gen: 2,
  tids: ["lock-1"],
  mode: "stored",
  holder: other.publicKeyB64,
  term: "phone-1",
  nbf: 1_767_225_600,
  iat: 1_767_225_600,
  jti: "jti-0000000000000001",
};

const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
const keysOf =
  (...keys: SigningKey[]) =>
  (kid: string): KeyObject | undefined =>
    keys.find((k) => k.kid === kid)?.publicKey;

function signRaw(header: object, body: unknown, key: SigningKey = issuer): string {
  const input = `${b64json(header)}.${b64json(body)}`;
  return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString("base64url")}`;
}

/** The TokenError code a verification throws, or "accepted". */
function refusal(token: string, typ: (typeof TokenType)[keyof typeof TokenType] = CRED): string {
  try {
    verifyToken(token, typ, keysOf(issuer));
  } catch (err) {
    if (err instanceof TokenError) return err.tokenCode;
    throw err;
  }
  return "accepted";
}

const header = { alg: "EdDSA", typ: CRED, kid: issuer.kid };

describe("signToken / verifyToken", () => {
  it("round-trips a payload and names the signer's kid in the header", () => {
    const token = signToken(CRED, payload, issuer);
    const decoded = verifyToken(token, CRED, keysOf(issuer));
    expect(decoded.payload).toEqual(payload);
    expect(decoded.header).toEqual({ alg: "EdDSA", typ: CRED, kid: issuer.kid });
    expect(token.split(".")[0]).toBe(encodeProtectedHeader(CRED, issuer.kid));
  });

  it("produces the same token for the same key and payload (Ed25519 is deterministic)", () => {
    expect(signToken(CRED, payload, issuer)).toBe(signToken(CRED, payload, issuer));
  });

  it("encodes the protected header with members in the order alg, typ, kid", () => {
    const json = Buffer.from(encodeProtectedHeader(CRED, issuer.kid), "base64url").toString();
    expect(json).toBe(`{"alg":"EdDSA","typ":"${CRED}","kid":"${issuer.kid}"}`);
  });

  it("refuses alg none, HS256 and ES256 with token_bad_alg", () => {
    const body = b64json(payload);
    const none = b64json({ ...header, alg: "none" });
    const hs = b64json({ ...header, alg: "HS256" });
    const hmac = createHmac("sha256", Buffer.from(issuer.publicKeyB64, "base64url"))
      .update(`${hs}.${body}`)
      .digest("base64url");
    const good = signToken(CRED, payload, issuer).split(".")[2];
    expect(refusal(`${none}.${body}.${good}`)).toBe("token_bad_alg");
    expect(refusal(`${hs}.${body}.${hmac}`)).toBe("token_bad_alg");
    const es = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const esHead = b64json({ ...header, alg: "ES256" });
    const esSig = sign("sha256", Buffer.from(`${esHead}.${body}`), {
      key: es.privateKey,
      dsaEncoding: "ieee-p1363",
    });
    expect(refusal(`${esHead}.${body}.${esSig.toString("base64url")}`)).toBe("token_bad_alg");
  });

  it("refuses alg none with an empty signature as a bad alg (regression: was reported as malformed)", () => {
    expect(refusal(`${b64json({ ...header, alg: "none" })}.${b64json(payload)}.`)).toBe("token_bad_alg");
  });

  it("refuses a token of another typ with token_wrong_typ, even when well signed", () => {
    const frame = signToken(
      TokenType.frame,
      {
        v: 1,
        tid: "lock-1",
        slot: "front-door",
        term: "phone-1",
        nonce: "AAECAwQFBgcICQoLDA0ODw",
        seq: 1,
        cred: "a.b.c",
      },
      issuer,
    );
    expect(refusal(frame, CRED)).toBe("token_wrong_typ");
    expect(refusal(signToken(CRED, payload, issuer), TokenType.relay)).toBe("token_wrong_typ");
    expect(refusal(signRaw({ ...header, typ: "JWT" }, payload))).toBe("token_wrong_typ");
  });

  it("refuses a token whose kid the verifier does not know with token_unknown_kid", () => {
    expect(refusal(signToken(CRED, payload, other))).toBe("token_unknown_kid");
  });

  it("refuses a signature from another key under the issuer's kid with token_bad_signature", () => {
    expect(refusal(signRaw(header, payload, other))).toBe("token_bad_signature");
  });

  it("refuses a changed payload under the original signature with token_bad_signature", () => {
    const [head, , sig] = signToken(CRED, payload, issuer).split(".");
    expect(refusal(`${head}.${b64json({ ...payload, gen: 3 })}.${sig}`)).toBe("token_bad_signature");
  });

  it("refuses a token over 8 KiB before parsing it", () => {
    const token = signToken(CRED, payload, issuer);
    const long = `${token.split(".")[0]}.${"A".repeat(8192)}.${token.split(".")[2]}`;
    expect(long.length).toBeGreaterThan(8192);
    expect(refusal(long)).toBe("token_malformed");
  });

  it("refuses extra or missing dot segments", () => {
    const token = signToken(CRED, payload, issuer);
    const [head, body, sig] = token.split(".");
    expect(refusal(`${token}.${sig}`)).toBe("token_malformed");
    expect(refusal(`${head}.${body}.${sig}.`)).toBe("token_malformed");
    expect(refusal(`${head}.${body}`)).toBe("token_malformed");
    expect(refusal(`.${body}.${sig}`)).toBe("token_malformed");
    expect(refusal(`${head}..${body}.${sig}`)).toBe("token_malformed");
    expect(refusal("")).toBe("token_malformed");
  });

  it("refuses non-canonical base64url (padding, standard alphabet, stray bits)", () => {
    const [head = "", body = "", sig = ""] = signToken(CRED, payload, issuer).split(".");
    expect(refusal(`${head}.${body}=.${sig}`)).toBe("token_malformed");
    const std = Buffer.from(sig, "base64url").toString("base64").replace(/=+$/, "");
    expect(std).not.toBe(sig);
    expect(refusal(`${head}.${body}.${std}`)).toBe("token_malformed");
    // The last of 86 characters carries 4 zero bits; setting one decodes to the same 64 bytes.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(sig.at(-1) ?? "");
    const stray = `${sig.slice(0, -1)}${alphabet[last | 1]}`;
    expect(Buffer.from(stray, "base64url")).toEqual(Buffer.from(sig, "base64url"));
    expect(refusal(`${head}.${body}.${stray}`)).toBe("token_malformed");
  });

  it("refuses a header with an extra member (jwk, crit) or without kid", () => {
    expect(
      refusal(signRaw({ ...header, jwk: { kty: "OKP", crv: "Ed25519", x: other.publicKeyB64 } }, payload)),
    ).toBe("token_malformed");
    expect(refusal(signRaw({ ...header, crit: ["exp"] }, payload))).toBe("token_malformed");
    expect(refusal(signRaw({ alg: "EdDSA", typ: CRED }, payload))).toBe("token_malformed");
  });

  it("refuses a header or payload that is not JSON as malformed, and a JSON non-object payload by its schema", () => {
    const sig = signToken(CRED, payload, issuer).split(".")[2];
    expect(refusal(`${Buffer.from("not json").toString("base64url")}.${b64json(payload)}.${sig}`)).toBe(
      "token_malformed",
    );
    expect(refusal(signRaw(header, "a string"))).toBe("token_bad_payload");
    expect(refusal(`${b64json(header)}.${Buffer.from("{").toString("base64url")}.${sig}`)).toBe(
      "token_malformed",
    );
  });

  it("refuses a signature that is not 64 bytes", () => {
    const [head, body] = signToken(CRED, payload, issuer).split(".");
    expect(refusal(`${head}.${body}.${Buffer.alloc(63).toString("base64url")}`)).toBe("token_malformed");
  });

  it("refuses a well-signed payload that breaks its schema with token_bad_payload naming the path", () => {
    expect(refusal(signRaw(header, { ...payload, admin: true }))).toBe("token_bad_payload");
    expect(refusal(signRaw(header, { ...payload, gen: 0 }))).toBe("token_bad_payload");
    expect(refusal(signRaw(header, { ...payload, tids: ["lock/+"] }))).toBe("token_bad_payload");
    expect(() => decodeToken(signRaw(header, { ...payload, gen: "2" }), CRED)).toThrow(
      /payload: \/gen must be integer/,
    );
  });
});

describe("kidOf", () => {
  it("equals the RFC 7638 thumbprint of the key's JWK", () => {
    // Computed from the JWK the platform exports, members sorted as RFC 7638 §3.2 requires.
    const jwk = issuer.publicKey.export({ format: "jwk" });
    const required = { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
    const canonical = JSON.stringify(
      Object.fromEntries(Object.entries(required).sort(([a], [b]) => a.localeCompare(b))),
    );
    const expected = createHash("sha256").update(canonical, "utf8").digest("base64url");
    expect(kidOf(issuer.publicKeyB64)).toBe(expected);
    expect(issuer.kid).toBe(expected);
  });

  it("matches the RFC 8037 Appendix A.3 thumbprint example", () => {
    expect(kidOf("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")).toBe(
      "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
    );
  });
});

describe("PublicKeyCache", () => {
  it("returns the same KeyObject for the same key", () => {
    const cache = new PublicKeyCache();
    const first = cache.get(issuer.publicKeyB64);
    expect(first).toBeDefined();
    expect(cache.get(issuer.publicKeyB64)).toBe(first);
    expect(first && rawPublicKeyB64(first)).toBe(issuer.publicKeyB64);
  });

  it("refuses malformed keys", () => {
    const cache = new PublicKeyCache();
    expect(cache.get("")).toBeUndefined();
    expect(cache.get(issuer.publicKeyB64.slice(1))).toBeUndefined();
    expect(cache.get(`${issuer.publicKeyB64}A`)).toBeUndefined();
    expect(cache.get(`${issuer.publicKeyB64.slice(0, -1)}=`)).toBeUndefined();
    expect(cache.get(Buffer.alloc(33).toString("base64url"))).toBeUndefined();
    expect(cache.get(`${"+/".repeat(21)}A`)).toBeUndefined();
  });

  it("evicts the oldest key when full and imports it again on the next use", () => {
    const cache = new PublicKeyCache(1);
    const a = cache.get(issuer.publicKeyB64);
    cache.get(other.publicKeyB64);
    const again = cache.get(issuer.publicKeyB64);
    expect(again).not.toBe(a);
    expect(again && rawPublicKeyB64(again)).toBe(issuer.publicKeyB64);
  });
});
