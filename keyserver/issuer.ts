import type { KeyObject } from "node:crypto";
import { statSync } from "node:fs";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import {
  b64url,
  fromB64urlStrict,
  generateSigningKey,
  type SigningKey,
  signingKeyFromSeed,
} from "../common/keys.js";
import type { IssuerPublicKey } from "../schemas/config.js";
import { IssuerKeyFile } from "../schemas/records.js";
import { MAX_ISSUER_KEYS, type RegistryIssuer } from "../schemas/tokens.js";

/** One issuer key as `admin issuer list` shows it (Unix seconds). */
export interface IssuerKeyInfo {
  kid: string;
  created: number;
  active: boolean;
  retired?: number;
}

interface LoadedKeys {
  readonly file: IssuerKeyFile;
  /** Every key not retired, oldest first. */
  readonly trusted: readonly SigningKey[];
  readonly active: SigningKey;
}

function loadKeys(file: IssuerKeyFile, path: string): LoadedKeys {
  const byKid = new Map<string, SigningKey>();
  for (const k of file.keys) {
    const seed = fromB64urlStrict(k.seed);
    if (seed?.length !== 32) throw new SparekeyError("config_invalid", `${path}: a key seed is not 32 bytes`);
    const key = signingKeyFromSeed(seed);
    if (key.kid !== k.kid) throw new SparekeyError("config_invalid", `${path}: a kid does not match its key`);
    if (k.retired === undefined) byKid.set(k.kid, key);
  }
  const active = byKid.get(file.active);
  if (!active)
    throw new SparekeyError("config_invalid", `${path}: the active key is not among its live keys`);
  const order = [...file.keys].filter((k) => byKid.has(k.kid)).sort((a, b) => a.created - b.created);
  return { file, active, trusted: order.map((k) => byKid.get(k.kid)).filter((k) => k !== undefined) };
}

function readFile(path: string): IssuerKeyFile {
  const file = readJsonFile(path, IssuerKeyFile, "issuer key file");
  if (!file) throw new SparekeyError("config_invalid", `${path}: missing`);
  return file;
}

/** What tells a rewritten file apart (it is replaced by rename, so the inode changes). */
function fileStamp(path: string): string {
  const s = statSync(path);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

/**
 * The issuer keys of `<data>/issuer.json`. The active key signs credentials, relay frames and unlocks;
 * every key not retired verifies and is listed in registries (`issuers`), so a rotation has an overlap
 * in which both keys open. The registry and the fleet list are signed by the oldest key not retired:
 * every target still trusts that one, and a registry is how a target learns a newer key.
 *
 * The admin CLI rewrites the file while a key server runs on it; that key server calls `refresh()`
 * when the store reports a change.
 */
export class Issuer {
  private loaded: LoadedKeys;
  private stamp: string | undefined;

  private constructor(
    private readonly path: string,
    file: IssuerKeyFile,
  ) {
    this.loaded = loadKeys(file, path);
  }

  static load(path: string): Issuer {
    const stamp = fileStamp(path);
    const issuer = new Issuer(path, readFile(path));
    issuer.stamp = stamp;
    return issuer;
  }

  /** Signs credentials, relay frames and unlocks. */
  get signingKey(): SigningKey {
    return this.loaded.active;
  }

  /** Signs registries and the fleet list: the oldest key not retired, which every target trusts. */
  get listSigningKey(): SigningKey {
    return this.loaded.trusted[0] ?? this.loaded.active;
  }

  /**
   * The keys a newly paired target's config lists (`issuer_keys`): read from the file as it is now, so a
   * pairing in a key server's process never writes keys another process has since retired.
   */
  publicKeys(): IssuerPublicKey[] {
    this.refresh();
    return this.loaded.trusted.map((k) => ({ kid: k.kid, public_key: k.publicKeyB64 }));
  }

  /** The same keys in a registry's `issuers` form. */
  registryIssuers(): RegistryIssuer[] {
    return this.loaded.trusted.map((k) => ({ kid: k.kid, x: k.publicKeyB64 }));
  }

  keyForKid = (kid: string): KeyObject | undefined =>
    this.loaded.trusted.find((k) => k.kid === kid)?.publicKey;

  list(): IssuerKeyInfo[] {
    return this.loaded.file.keys.map((k) => ({
      kid: k.kid,
      created: k.created,
      active: k.kid === this.loaded.file.active,
      ...(k.retired !== undefined ? { retired: k.retired } : {}),
    }));
  }

  /** Read the file again when another process rewrote it; true when the keys changed. */
  refresh(): boolean {
    const stamp = fileStamp(this.path);
    if (stamp === this.stamp) return false;
    this.loaded = loadKeys(readFile(this.path), this.path);
    this.stamp = stamp;
    return true;
  }

  /** A new key, active from now on; the others stay trusted. Written before it is used. */
  rotate(nowS: number): SigningKey {
    this.refresh();
    const live = this.loaded.trusted.length;
    if (live >= MAX_ISSUER_KEYS)
      throw new SparekeyError("bad_request", `${live} issuer keys are trusted; retire one before rotating`);
    const { key, seed } = generateSigningKey();
    const { file } = this.loaded;
    this.write({
      ...file,
      keys: [...file.keys, { kid: key.kid, seed: b64url(seed), created: nowS }],
      active: key.kid,
    });
    return key;
  }

  /** Stop trusting `kid`: it leaves `publicKeys()` and the registries. The active key is refused. */
  retire(kid: string, nowS: number): void {
    this.refresh();
    const { file } = this.loaded;
    const entry = file.keys.find((k) => k.kid === kid);
    if (!entry) throw new SparekeyError("not_found", `issuer key ${kid} not found`);
    if (kid === file.active)
      throw new SparekeyError("forbidden", `issuer key ${kid} is the active key; rotate first`);
    if (entry.retired !== undefined)
      throw new SparekeyError("already_exists", `issuer key ${kid} is retired`);
    // The seed stays in the file: a backup taken before still verifies everything it holds.
    this.write({ ...file, keys: file.keys.map((k) => (k.kid === kid ? { ...k, retired: nowS } : k)) });
  }

  private write(file: IssuerKeyFile): void {
    const loaded = loadKeys(file, this.path);
    writeJsonAtomic(this.path, file, 0o600);
    this.loaded = loaded;
    this.stamp = fileStamp(this.path);
  }
}
