import { createPublicKey, type KeyObject } from "node:crypto";
import { TokenError, verifyToken } from "../common/jws.js";
import { kidOf } from "../common/keys.js";
import type { IssuerPublicKey } from "../schemas/config.js";
import type { RefusalReason } from "../schemas/reasons.js";
import { type RegistryIssuer, type TokenPayloads, TokenType } from "../schemas/tokens.js";

function importKey(x: string): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}

/** The issuer keys of the target's config, imported once, by kid. */
export function issuerKeyMap(keys: readonly IssuerPublicKey[]): Map<string, KeyObject> {
  return new Map(keys.map((k) => [k.kid, importKey(k.public_key)]));
}

/** The first `issuers` entry whose kid is not the RFC 7638 thumbprint of its key, if any. */
export function mismatchedIssuer(issuers: readonly RegistryIssuer[]): RegistryIssuer | undefined {
  return issuers.find((k) => kidOf(k.x) !== k.kid);
}

/**
 * The issuer keys a target trusts: its config's `issuer_keys` and the keys the latest applied registry
 * listed under `issuers`. Every check reads the one map `keys`, so a key learned or dropped counts for
 * credentials, relay frames, unlocks and lists alike from the moment `learn` returns. A registry can
 * add keys and take back the ones it added, never a config key: re-pairing is what changes those.
 */
export class TrustedIssuers {
  readonly keys = new Map<string, KeyObject>();
  private readonly config: ReadonlyMap<string, KeyObject>;

  constructor(config: readonly IssuerPublicKey[], learned: readonly RegistryIssuer[] = []) {
    this.config = issuerKeyMap(config);
    this.learn(learned);
  }

  /**
   * Trust the config keys and `learned` (already checked by `mismatchedIssuer`, already persisted).
   * True when a key trusted before is not any more.
   */
  learn(learned: readonly RegistryIssuer[]): boolean {
    const known = new Map(this.keys);
    this.keys.clear();
    for (const [kid, key] of this.config) this.keys.set(kid, key);
    for (const k of learned) {
      if (this.keys.has(k.kid)) continue;
      // Importing costs more than a verify: keep the KeyObjects of keys already trusted.
      this.keys.set(k.kid, known.get(k.kid) ?? importKey(k.x));
    }
    return [...known.keys()].some((kid) => !this.keys.has(kid));
  }
}

const REASON_OF_TOKEN_ERROR: Record<TokenError["tokenCode"], RefusalReason | undefined> = {
  token_malformed: "malformed",
  token_bad_alg: "bad_alg",
  token_wrong_typ: "wrong_typ",
  token_unknown_kid: "unknown_issuer",
  token_bad_payload: "schema_violation",
  // No refusal code names an issuer signature on a registry; the event carries no reason then.
  token_bad_signature: undefined,
};

/** The refusal reason for a token that failed to decode or verify (undefined: none in the closed list fits). */
export function reasonOfTokenError(err: TokenError): RefusalReason | undefined {
  return REASON_OF_TOKEN_ERROR[err.tokenCode];
}

export type IssuerTokenResult<T extends keyof TokenPayloads> =
  | { ok: true; payload: TokenPayloads[T] }
  | { ok: false; reason: RefusalReason | undefined; message: string };

/** Verify an issuer-signed token (registry, revocations) from the wire; never throws for bad input. */
export function verifyIssuerToken<T extends "sparekey-registry+jws" | "sparekey-revocations+jws">(
  raw: Buffer,
  typ: T,
  issuers: ReadonlyMap<string, KeyObject>,
): IssuerTokenResult<T> {
  try {
    const decoded = verifyToken(raw.toString("utf8"), typ, (kid) => issuers.get(kid));
    return { ok: true, payload: decoded.payload };
  } catch (err) {
    if (err instanceof TokenError) {
      return { ok: false, reason: REASON_OF_TOKEN_ERROR[err.tokenCode], message: err.message };
    }
    throw err;
  }
}

/** What a terminal may carry to a target: either issuer-signed list, told apart by its `typ`. */
export type CarriedTokenResult =
  | { typ: "sparekey-registry+jws"; result: IssuerTokenResult<"sparekey-registry+jws"> }
  | { typ: "sparekey-revocations+jws"; result: IssuerTokenResult<"sparekey-revocations+jws"> };

/**
 * Verify a carried token exactly as the key server's copy would be: the header names the type, and a
 * registry typ is verified as a registry only (a token of any other typ is refused as `wrong_typ`).
 */
export function verifyCarriedToken(raw: Buffer, issuers: ReadonlyMap<string, KeyObject>): CarriedTokenResult {
  const registry = verifyIssuerToken(raw, TokenType.registry, issuers);
  if (registry.ok || registry.reason !== "wrong_typ") return { typ: TokenType.registry, result: registry };
  return { typ: TokenType.revocations, result: verifyIssuerToken(raw, TokenType.revocations, issuers) };
}
