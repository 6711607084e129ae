import { signToken } from "../common/jws.js";
import type { SigningKey } from "../common/keys.js";
import { TokenType } from "../schemas/tokens.js";

/**
 * What turns a challenge into a key frame. The stored-key and fob signers hold the key; a relay
 * signer (next issue) asks the key server per nonce instead, which is why `sign` is async.
 */
export interface FrameSigner {
  readonly mode: "stored" | "fob" | "relay";
  readonly slot: string;
  readonly term: string;
  sign(frame: { tid: string; nonce: string; seq: number }): Promise<string>;
}

export function holderSigner(o: {
  mode: "stored" | "fob";
  key: SigningKey;
  term: string;
  slot: string;
  credential: string;
}): FrameSigner {
  return {
    mode: o.mode,
    slot: o.slot,
    term: o.term,
    async sign({ tid, nonce, seq }) {
      return signToken(
        TokenType.frame,
        { v: 1, tid, slot: o.slot, term: o.term, nonce, seq, cred: o.credential },
        o.key,
      );
    },
  };
}
