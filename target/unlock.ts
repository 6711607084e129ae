import type { KeyObject } from "node:crypto";
import { type DecodedToken, decodeToken, TokenError, verifySignature } from "../common/jws.js";
import type { RefusalReason } from "../schemas/reasons.js";
import { TokenType, type UnlockPayload } from "../schemas/tokens.js";
import { MAX_FRAME_BYTES } from "./checks.js";
import { reasonOfTokenError } from "./issuer-tokens.js";

/** What deciding on an unlock command may read. */
export interface UnlockView {
  readonly tid: string;
  readonly currentNonce: string;
  readonly previousNonce: string | undefined;
  readonly nowMs: number;
  /** The command was applied before (kept in the state file until its exp). */
  applied(cmdId: string): boolean;
  terminalOffline(term: string): boolean;
}

export type UnlockDecision =
  | { readonly ok: true; readonly command: UnlockPayload }
  | { readonly ok: false; readonly reason: RefusalReason; readonly cmdId?: string; readonly term?: string };

function refuse(reason: RefusalReason, command?: UnlockPayload): UnlockDecision {
  return command ? { ok: false, reason, cmdId: command.cmd_id, term: command.term } : { ok: false, reason };
}

/**
 * A one-time unlock command from `targets/{tid}/unlock`, checked cheapest first; pure, never throws for
 * bad input. Bound to the current or previous challenge: a command the key server sent before a line
 * drop is not applied late, because the nonce has moved on by then. The clock only judges `exp`; the
 * nonce already makes the command fresh, so an untrusted clock does not refuse it.
 */
export function decideUnlock(
  raw: Buffer,
  retain: boolean,
  view: UnlockView,
  issuers: ReadonlyMap<string, KeyObject>,
): UnlockDecision {
  if (raw.length > MAX_FRAME_BYTES) return refuse("payload_too_large");
  // A retained command would be delivered again to every reconnect of the target.
  if (retain) return refuse("retained_frame");
  let decoded: DecodedToken<typeof TokenType.unlock>;
  try {
    decoded = decodeToken(raw.toString("utf8"), TokenType.unlock);
  } catch (err) {
    if (err instanceof TokenError) return refuse(reasonOfTokenError(err) ?? "malformed");
    throw err;
  }
  const c = decoded.payload;
  if (c.tid !== view.tid) return refuse("wrong_target", c);
  if (c.nonce !== view.currentNonce && c.nonce !== view.previousNonce) return refuse("stale_nonce", c);
  if (Math.floor(view.nowMs / 1000) >= c.exp) return refuse("expired", c);
  if (view.applied(c.cmd_id)) return refuse("unlock_replayed", c);
  if (view.terminalOffline(c.term)) return refuse("terminal_offline", c);
  const key = issuers.get(decoded.header.kid);
  if (!key) return refuse("unknown_issuer", c);
  if (!verifySignature(decoded, key)) return refuse("bad_issuer_signature", c);
  return { ok: true, command: c };
}
