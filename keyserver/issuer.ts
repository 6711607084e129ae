import type { KeyObject } from "node:crypto";
import { readJsonFile } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { fromB64urlStrict, type SigningKey, signingKeyFromSeed } from "../common/keys.js";
import type { IssuerPublicKey } from "../schemas/config.js";
import { IssuerKeyFile } from "../schemas/records.js";

/** The issuer keys: the active one signs, all of them verify (rotation). */
export class Issuer {
  readonly signingKey: SigningKey;
  private readonly keys: ReadonlyMap<string, SigningKey>;

  constructor(keys: readonly SigningKey[], activeKid: string) {
    this.keys = new Map(keys.map((k) => [k.kid, k]));
    const active = this.keys.get(activeKid);
    if (!active) throw new SparekeyError("config_invalid", "issuer.json: active key is not among its keys");
    this.signingKey = active;
  }

  static load(path: string): Issuer {
    const file = readJsonFile(path, IssuerKeyFile, "issuer key file");
    if (!file) throw new SparekeyError("config_invalid", `${path}: missing`);
    const keys = file.keys.map((k) => {
      const seed = fromB64urlStrict(k.seed);
      if (seed?.length !== 32)
        throw new SparekeyError("config_invalid", `${path}: a key seed is not 32 bytes`);
      const key = signingKeyFromSeed(seed);
      if (key.kid !== k.kid)
        throw new SparekeyError("config_invalid", `${path}: a kid does not match its key`);
      return key;
    });
    return new Issuer(keys, file.active);
  }

  publicKeys(): IssuerPublicKey[] {
    return [...this.keys.values()].map((k) => ({ kid: k.kid, public_key: k.publicKeyB64 }));
  }

  keyForKid = (kid: string): KeyObject | undefined => this.keys.get(kid)?.publicKey;
}
