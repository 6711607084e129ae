import { sign as edSign, verify as edVerify, type KeyObject } from "node:crypto";
import type { Static } from "@sinclair/typebox";
import {
  JwsHeader,
  TokenPayloadSchemas,
  type TokenPayloads,
  type TokenTypeValue,
} from "../schemas/tokens.js";
import { parseJson, validator } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";
import { fromB64urlStrict, type SigningKey } from "./keys.js";

/**
 * JWS compact serialisation (RFC 7515) with EdDSA/Ed25519 (RFC 8037) only. Verifiers pin both `alg`
 * and `typ`: `alg: none`, HS256 or a token minted for another message type never verify.
 */

const MAX_TOKEN_LENGTH = 8192;
const headerValidator = validator(JwsHeader, "jws header");

export type TokenErrorCode =
  | "token_malformed"
  | "token_bad_alg"
  | "token_wrong_typ"
  | "token_unknown_kid"
  | "token_bad_signature"
  | "token_bad_payload";

export class TokenError extends SparekeyError {
  constructor(
    readonly tokenCode: TokenErrorCode,
    message: string,
  ) {
    super(tokenCode, message);
  }
}

/** Header members in a fixed order, so tokens are byte-for-byte reproducible (test vectors). */
export function encodeProtectedHeader(typ: TokenTypeValue, kid: string): string {
  return Buffer.from(JSON.stringify({ alg: "EdDSA", typ, kid })).toString("base64url");
}

export function signToken<T extends TokenTypeValue>(
  typ: T,
  payload: TokenPayloads[T],
  key: SigningKey,
): string {
  const head = encodeProtectedHeader(typ, key.kid);
  const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
  const signingInput = `${head}.${body}`;
  const signature = edSign(null, Buffer.from(signingInput), key.privateKey);
  return `${signingInput}.${signature.toString("base64url")}`;
}

/** A token whose header and payload are checked, but whose signature is not yet. */
export interface DecodedToken<T extends TokenTypeValue> {
  readonly header: Static<typeof JwsHeader>;
  readonly payload: TokenPayloads[T];
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

/**
 * Parse and check everything but the signature, cheapest first: shape, `alg`, `typ`, header schema,
 * payload schema. Throws TokenError. Split from `verifySignature` so callers can run their own cheap
 * checks (nonce, seq, registry) before paying for Ed25519.
 */
export function decodeToken<T extends TokenTypeValue>(token: string, typ: T): DecodedToken<T> {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
    throw new TokenError("token_malformed", "token missing or too long");
  }
  const first = token.indexOf(".");
  const last = token.lastIndexOf(".");
  // An empty signature segment is let through here so that `alg: none` is reported as a bad alg.
  if (first <= 0 || last === first || token.indexOf(".", first + 1) !== last) {
    throw new TokenError("token_malformed", "not a JWS compact token");
  }
  const headBytes = fromB64urlStrict(token.slice(0, first));
  const bodyBytes = fromB64urlStrict(token.slice(first + 1, last));
  const signature = fromB64urlStrict(token.slice(last + 1));
  if (!headBytes || !bodyBytes || !signature) throw new TokenError("token_malformed", "bad base64url");
  const header = parseJson(headBytes.toString("utf8"));
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new TokenError("token_malformed", "header is not a JSON object");
  }
  const h = header as Record<string, unknown>;
  if (h.alg !== "EdDSA") throw new TokenError("token_bad_alg", "alg must be EdDSA");
  if (h.typ !== typ) throw new TokenError("token_wrong_typ", `typ must be ${typ}`);
  if (!headerValidator.is(header)) throw new TokenError("token_malformed", "header has unexpected members");
  if (signature.length !== 64) throw new TokenError("token_malformed", "an Ed25519 signature is 64 bytes");
  const payload = parseJson(bodyBytes.toString("utf8"));
  if (payload === undefined) {
    throw new TokenError("token_malformed", "payload is not JSON or repeats a member");
  }
  const payloadValidator = validator(TokenPayloadSchemas[typ], typ);
  if (!payloadValidator.is(payload)) {
    throw new TokenError("token_bad_payload", `payload: ${payloadValidator.lastIssues().join("; ")}`);
  }
  return {
    header: header,
    payload: payload as TokenPayloads[T],
    signingInput: Buffer.from(token.slice(0, last)),
    signature,
  };
}

/** Ed25519 over the token's signing input; only those two parts are read, so any split token serves. */
export function verifySignature(
  decoded: Pick<DecodedToken<TokenTypeValue>, "signingInput" | "signature">,
  key: KeyObject,
): boolean {
  try {
    return edVerify(null, decoded.signingInput, key, decoded.signature);
  } catch {
    return false;
  }
}

/** Decode and verify with a key found by `kid`. Throws TokenError. */
export function verifyToken<T extends TokenTypeValue>(
  token: string,
  typ: T,
  keyForKid: (kid: string) => KeyObject | undefined,
): DecodedToken<T> {
  const decoded = decodeToken(token, typ);
  const key = keyForKid(decoded.header.kid);
  if (!key) throw new TokenError("token_unknown_kid", "signed by an unknown key");
  if (!verifySignature(decoded, key))
    throw new TokenError("token_bad_signature", "signature does not verify");
  return decoded;
}
