import { randomBytes } from "node:crypto";
import { signToken } from "../common/jws.js";
import type { CredentialPayload, KeyMode } from "../schemas/tokens.js";
import { TokenType } from "../schemas/tokens.js";
import type { Issuer } from "./issuer.js";
import type { Issued } from "./store/store.js";

export function newJti(): string {
  return randomBytes(16).toString("base64url");
}

/** Sign what the store recorded: the token carries exactly the issued row's facts. */
export function signCredential(
  issuer: Issuer,
  issued: Issued,
  c: { mode: KeyMode; holder: string; term: string; iat: number; jti: string },
): string {
  const payload: CredentialPayload = {
    v: 1,
    slot: issued.slot,
    gen: issued.gen,
    tids: issued.tids,
    mode: c.mode,
    holder: c.holder,
    term: c.term,
    nbf: issued.nbf,
    ...(issued.exp !== undefined ? { exp: issued.exp } : {}),
    ...(issued.max_uses !== undefined ? { max_uses: issued.max_uses } : {}),
    ...(issued.schedule !== undefined ? { schedule: issued.schedule } : {}),
    ...(issued.first_use_ttl_s !== undefined ? { first_use_ttl_s: issued.first_use_ttl_s } : {}),
    iat: c.iat,
    jti: c.jti,
  };
  return signToken(TokenType.credential, payload, issuer.signingKey);
}
