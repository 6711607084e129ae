import { sign as cryptoSign, randomBytes } from "node:crypto";
import { signToken } from "../../common/jws.js";
import { generateSigningKey, type SigningKey } from "../../common/keys.js";
import type { IssuerPublicKey } from "../../schemas/config.js";
import {
  type CredentialPayload,
  type FramePayload,
  type RegistryEntry,
  type RegistryPayload,
  type RelayPayload,
  type RevocationsPayload,
  TokenType,
  type UnlockPayload,
} from "../../schemas/tokens.js";

/**
 * Test helpers that mint the signed messages of docs/PROTOCOL.md with real Ed25519 keys: an issuer (the key
 * server's key), holders (a terminal's or fob's key), credentials, registries and frames.
 */

export interface TestIssuer {
  readonly key: SigningKey;
  /** The entry a target's config lists under `issuer_keys`. */
  readonly publicKey: IssuerPublicKey;
}

export interface TestHolder {
  readonly key: SigningKey;
  /** Raw public key, base64url: a credential's `holder`. */
  readonly publicKeyB64: string;
}

export function makeIssuer(): TestIssuer {
  const { key } = generateSigningKey();
  return { key, publicKey: { kid: key.kid, public_key: key.publicKeyB64 } };
}

export function makeHolder(): TestHolder {
  const { key } = generateSigningKey();
  return { key, publicKeyB64: key.publicKeyB64 };
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Overrides may set a member to `undefined` to leave it out (e.g. `{ holder: undefined }`). */
export type Overrides<T> = { [K in keyof T]?: T[K] | undefined };

function merge<T extends object>(base: T, overrides: Overrides<T>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out as T;
}

/** The credential payload minted by default: stored key, slot `slot-1` gen 1, for `lock-1`, term `term-1`. */
export function credentialPayload(overrides: Overrides<CredentialPayload> = {}): CredentialPayload {
  const now = nowSeconds();
  return merge<CredentialPayload>(
    {
      v: 1,
      slot: "slot-1",
      gen: 1,
      tids: ["lock-1"],
      mode: "stored",
      term: "term-1",
      nbf: now - 10,
      iat: now - 10,
      jti: randomBytes(12).toString("base64url"),
    },
    overrides,
  );
}

/** A `sparekey-credential+jws` signed by the issuer (pass `holder` for a stored key or fob). */
export function mintCredential(issuer: TestIssuer, overrides: Overrides<CredentialPayload> = {}): string {
  return signToken(TokenType.credential, credentialPayload(overrides), issuer.key);
}

/** A registry entry: active, min_gen 1. */
export function registryEntry(slot: string, overrides: Overrides<RegistryEntry> = {}): RegistryEntry {
  return merge<RegistryEntry>({ slot, min_gen: 1, status: "active" }, overrides);
}

export function registryPayload(tid: string, overrides: Overrides<RegistryPayload> = {}): RegistryPayload {
  return merge<RegistryPayload>(
    { v: 1, tid, version: 1, slots: [registryEntry("slot-1")], iat: nowSeconds() },
    overrides,
  );
}

/** A `sparekey-registry+jws` for `tid`: version 1 with `slot-1` active unless overridden. */
export function mintRegistry(
  issuer: TestIssuer,
  tid: string,
  overrides: Overrides<RegistryPayload> = {},
): string {
  return signToken(TokenType.registry, registryPayload(tid, overrides), issuer.key);
}

/** A `sparekey-revocations+jws`: version 1, nothing revoked unless overridden. */
export function mintRevocations(issuer: TestIssuer, overrides: Overrides<RevocationsPayload> = {}): string {
  return signToken(
    TokenType.revocations,
    merge<RevocationsPayload>({ v: 1, version: 1, revoked: [], iat: nowSeconds() }, overrides),
    issuer.key,
  );
}

/** A `sparekey-frame+jws` signed by the holder. */
export function mintFrame(holder: TestHolder | SigningKey, payload: FramePayload): string {
  const key = "key" in holder ? holder.key : holder;
  return signToken(TokenType.frame, payload, key);
}

/** A `sparekey-relay+jws` signed by the issuer: slot `slot-1` gen 1, term `term-1`, seq 1 unless overridden. */
export function mintRelay(
  issuer: TestIssuer | SigningKey,
  payload: Pick<RelayPayload, "tid" | "nonce"> & Overrides<RelayPayload>,
): string {
  const key = "key" in issuer ? issuer.key : issuer;
  return signToken(
    TokenType.relay,
    merge<RelayPayload>(
      {
        v: 1,
        tid: payload.tid,
        slot: "slot-1",
        gen: 1,
        term: "term-1",
        epoch: 1,
        nonce: payload.nonce,
        seq: 1,
        iat: nowSeconds(),
      },
      payload,
    ),
    key,
  );
}

/** A `sparekey-unlock+jws` signed by the issuer: a fresh cmd_id, term `term-1`, 1 s open, 60 s to live. */
export function mintUnlock(
  issuer: TestIssuer | SigningKey,
  payload: Pick<UnlockPayload, "tid" | "nonce"> & Overrides<UnlockPayload>,
): string {
  const key = "key" in issuer ? issuer.key : issuer;
  const now = nowSeconds();
  return signToken(
    TokenType.unlock,
    merge<UnlockPayload>(
      {
        v: 1,
        tid: payload.tid,
        nonce: payload.nonce,
        cmd_id: randomBytes(12).toString("base64url"),
        term: "term-1",
        duration_ms: 1000,
        iat: now,
        exp: now + 60,
      },
      payload,
    ),
    key,
  );
}

/**
 * A token with any header and payload, for refusal tests (`alg: none`, a wrong `typ`, a payload that
 * is not JSON). `payload` is JSON-encoded unless it is a Buffer; signed with `key` when given, else
 * the signature is 64 zero bytes.
 */
export function rawToken(header: Record<string, unknown>, payload: unknown, key?: SigningKey): string {
  const head = Buffer.from(JSON.stringify(header)).toString("base64url");
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload));
  const input = `${head}.${bytes.toString("base64url")}`;
  const signature = key ? signRaw(input, key) : Buffer.alloc(64);
  return `${input}.${signature.toString("base64url")}`;
}

function signRaw(input: string, key: SigningKey): Buffer {
  // node:crypto sign with a null algorithm is Ed25519 for an Ed25519 key.
  return cryptoSign(null, Buffer.from(input), key.privateKey);
}
