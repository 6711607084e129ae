import { SparekeyError } from "../common/errors.js";
import { decodeToken } from "../common/jws.js";
import type { Logger } from "../common/log.js";
import { type CredentialPayload, TokenType } from "../schemas/tokens.js";
import type { Companion } from "./carried.js";
import { downloadWith } from "./download.js";
import { readWallet } from "./files.js";
import { RpcClient } from "./rpc-client.js";
import type { TerminalSession } from "./session.js";

/** Renew a stored credential once less than this fraction of its lifetime (`nbf` to `exp`) remains. */
export const DEFAULT_RENEW_FRACTION = 1 / 3;

export interface RenewOptions {
  /** 0 < fraction <= 1; default 1/3. */
  fraction?: number;
  /** Wall clock (Unix ms); Date.now by default. */
  now?: () => number;
  /** Only these slots (default: every stored credential in the wallet). */
  slots?: readonly string[];
  logger: Logger;
}

export type RenewOutcome =
  | { slot: string; outcome: "renewed"; gen: number; exp: number | undefined }
  | { slot: string; outcome: "not_due" }
  | { slot: string; outcome: "failed"; code: string };

/**
 * Whether a credential is due for renewal at `nowS`. One that never expires is not; nor is a use- or
 * first-use-limited one: the key server issues those once (`grant_used`), so asking again is futile.
 */
export function renewalDue(c: CredentialPayload, nowS: number, fraction = DEFAULT_RENEW_FRACTION): boolean {
  if (c.exp === undefined || c.max_uses !== undefined || c.first_use_ttl_s !== undefined) return false;
  const lifetime = c.exp - c.nbf;
  return lifetime > 0 && c.exp - nowS < lifetime * fraction;
}

/**
 * Download again every stored credential in the wallet that is due, over an open session. A renewal
 * that fails leaves the credential as it was; the outcome says why.
 */
export async function renewDue(session: TerminalSession, o: RenewOptions): Promise<RenewOutcome[]> {
  const fraction = o.fraction ?? DEFAULT_RENEW_FRACTION;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new SparekeyError("bad_request", "the renewal fraction must be above 0 and at most 1");
  }
  const nowS = Math.floor((o.now ?? Date.now)() / 1000);
  const wallet = readWallet(session.dir, session.profile.term);
  const outcomes: RenewOutcome[] = [];
  for (const [slot, entry] of Object.entries(wallet.credentials)) {
    if (o.slots !== undefined && !o.slots.includes(slot)) continue;
    let payload: CredentialPayload;
    try {
      payload = decodeToken(entry.token, TokenType.credential).payload;
    } catch {
      continue; // an unreadable entry is `status`'s to report; it is not ours to replace
    }
    if (payload.mode !== "stored" || !renewalDue(payload, nowS, fraction)) {
      outcomes.push({ slot, outcome: "not_due" });
      continue;
    }
    try {
      const got = await downloadWith(session, { slot });
      o.logger.info({ slot, gen: got.gen, exp: got.exp }, "credential renewed");
      outcomes.push({ slot, outcome: "renewed", gen: got.gen, exp: got.exp });
    } catch (err) {
      const code = err instanceof SparekeyError ? err.code : "internal_error";
      o.logger.warn({ slot, code }, "renewal failed: the stored credential is kept");
      outcomes.push({ slot, outcome: "failed", code });
    }
  }
  return outcomes;
}

/**
 * `terminal use`: renew the credential in use in the background, over the line the frame loop uses. The
 * loop keeps the credential it started with; a renewed one is in the wallet for the next use.
 */
export async function startRenewal(
  session: Omit<TerminalSession, "rpc" | "close">,
  o: RenewOptions & { slot: string },
): Promise<Companion> {
  const rpc = new RpcClient({
    bus: session.link.bus,
    topics: session.topics,
    term: session.profile.term,
    logger: o.logger,
  });
  try {
    await rpc.start();
  } catch (err) {
    o.logger.warn({ err }, "cannot renew: no rpc");
    return { stop: async () => undefined };
  }
  const running = renewDue(
    { ...session, rpc, close: async () => undefined },
    { ...o, slots: [o.slot] },
  ).catch((err: unknown) => o.logger.warn({ err }, "renewal failed: the stored credential is kept"));
  return {
    async stop() {
      await rpc.stop();
      await running;
    },
  };
}
