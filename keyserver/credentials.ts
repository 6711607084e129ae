import { randomBytes } from "node:crypto";
import { SparekeyError } from "../common/errors.js";
import { signToken } from "../common/jws.js";
import type { CredentialPayload, KeyMode } from "../schemas/tokens.js";
import { TokenType } from "../schemas/tokens.js";
import type { CredentialTerms } from "./grants.js";
import type { Issuer } from "./issuer.js";
import type { Issued } from "./store/store.js";

/** Default lifetime of a stored credential: a week, then the terminal downloads it again. */
export const DEFAULT_CREDENTIAL_LIFETIME_S = 7 * 24 * 3600;

export function assertLifetime(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds <= 0)
    throw new SparekeyError("config_invalid", "credential lifetime must be a positive number of seconds");
  return seconds;
}

/**
 * A stored credential ages: its exp is the grant's, or `lifetimeS` after it starts when that comes
 * first, so a copied or stolen key stops by itself even when nobody revokes it. Counted from nbf, not
 * from now: a key fetched before its grant starts still gets its whole lifetime.
 */
export function withLifetime(terms: CredentialTerms, lifetimeS: number): CredentialTerms {
  const aged = terms.nbf + lifetimeS;
  return { ...terms, exp: terms.exp === undefined ? aged : Math.min(terms.exp, aged) };
}

export function newJti(): string {
  return randomBytes(16).toString("base64url");
}

/**
 * Sign what the store recorded: the token carries exactly the issued row's facts, and the terminal's
 * user (a phone's; a fob has none) so the target can name who opened it.
 */
export function signCredential(
  issuer: Issuer,
  issued: Issued,
  c: { mode: KeyMode; holder: string; term: string; user?: string | undefined; iat: number; jti: string },
): string {
  const payload: CredentialPayload = {
    v: 1,
    slot: issued.slot,
    gen: issued.gen,
    tids: issued.tids,
    mode: c.mode,
    holder: c.holder,
    term: c.term,
    ...(c.user !== undefined ? { user: c.user } : {}),
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
