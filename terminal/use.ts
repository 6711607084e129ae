import { readJsonFile } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { decodeToken } from "../common/jws.js";
import { signingKeyFromSeed } from "../common/keys.js";
import type { Logger } from "../common/log.js";
import { FobFile } from "../schemas/config.js";
import type { TerminalWallet } from "../schemas/records.js";
import { TokenType } from "../schemas/tokens.js";
import { assertId, Topics } from "../schemas/topics.js";
import { readWallet } from "./files.js";
import { type FrameLoopEnd, FrameSender, type FrameSenderSnapshot } from "./frame-sender.js";
import { type FrameSigner, holderSigner } from "./frame-signer.js";
import { connectTerminal, type TerminalLink } from "./link.js";
import { ClockSeq, WalletSeq } from "./seq.js";
import { loadIdentity } from "./session.js";

export interface UseOptions {
  tid: string;
  logger: Logger;
  onChange?: (snapshot: FrameSenderSnapshot) => void;
  timeoutPeriods?: number;
  firstChallengeTimeoutMs?: number;
}

/** A running frame loop and the connection it owns. */
export interface UseHandle {
  readonly sender: FrameSender;
  readonly ended: Promise<FrameLoopEnd>;
  /** Stop the loop (if still running) and disconnect. */
  close(): Promise<void>;
}

/** The wallet entry that opens `tid` (the given slot, else the highest generation). */
export function selectCredential(
  wallet: TerminalWallet,
  tid: string,
  slot?: string,
): { slot: string; token: string; gen: number } {
  let best: { slot: string; token: string; gen: number } | undefined;
  for (const [s, entry] of Object.entries(wallet.credentials)) {
    if (slot !== undefined && s !== slot) continue;
    if (!entry.tids.includes(tid)) continue;
    if (!best || entry.gen > best.gen) best = { slot: s, token: entry.token, gen: entry.gen };
  }
  if (!best) {
    const which = slot === undefined ? `target ${tid}` : `target ${tid} in slot ${slot}`;
    throw new SparekeyError(
      "not_found",
      `no credential for ${which}; run \`sparekey terminal download --target ${tid}\``,
    );
  }
  return best;
}

async function run(
  link: TerminalLink,
  topics: Topics,
  signer: FrameSigner,
  seq: WalletSeq | ClockSeq,
  o: UseOptions,
): Promise<UseHandle> {
  const sender = new FrameSender({
    bus: link.bus,
    topics,
    tid: o.tid,
    signer,
    seq,
    logger: o.logger,
    ...(o.onChange ? { onChange: o.onChange } : {}),
    ...(o.timeoutPeriods !== undefined ? { timeoutPeriods: o.timeoutPeriods } : {}),
    ...(o.firstChallengeTimeoutMs !== undefined
      ? { firstChallengeTimeoutMs: o.firstChallengeTimeoutMs }
      : {}),
  });
  try {
    await sender.start();
  } catch (err) {
    await link.close();
    throw err;
  }
  return {
    sender,
    ended: sender.ended,
    async close() {
      await sender.stop();
      await link.close();
    },
  };
}

/** Stored-key mode: the terminal signs frames with its own key and the credential in its wallet. */
export async function startUse(o: UseOptions & { dir: string; slot?: string }): Promise<UseHandle> {
  const tid = assertId(o.tid, "target");
  const { profile, key } = loadIdentity(o.dir);
  const credential = selectCredential(readWallet(o.dir, profile.term), tid, o.slot);
  const topics = new Topics(profile.prefix);
  const link = await connectTerminal({
    url: profile.broker_url,
    term: profile.term,
    username: profile.user,
    password: profile.password,
    topics,
    logger: o.logger,
    reconnectPeriod: 1000,
  });
  const signer = holderSigner({
    mode: "stored",
    key,
    term: profile.term,
    slot: credential.slot,
    credential: credential.token,
  });
  return run(link, topics, signer, new WalletSeq({ dir: o.dir, term: profile.term }), o);
}

export function readFob(path: string): FobFile {
  const fob = readJsonFile(path, FobFile, "fob file");
  if (!fob) throw new SparekeyError("not_found", `no fob file at ${path}`);
  return fob;
}

/** Fob mode: what `admin write-fob` wrote is everything the fob holds. */
export async function startFobUse(o: UseOptions & { fobFile: string }): Promise<UseHandle> {
  const tid = assertId(o.tid, "target");
  const fob = readFob(o.fobFile);
  const key = signingKeyFromSeed(Buffer.from(fob.seed, "base64url"));
  const { payload } = decodeToken(fob.credential, TokenType.credential);
  if (payload.holder !== key.publicKeyB64 || payload.term !== fob.term) {
    throw new SparekeyError(
      "terminal_key_mismatch",
      `the credential in ${o.fobFile} is not bound to this fob`,
    );
  }
  if (!payload.tids.includes(tid)) {
    throw new SparekeyError("not_found", `the fob's credential does not open target ${tid}`);
  }
  const topics = new Topics(fob.prefix);
  const link = await connectTerminal({
    url: fob.broker_url,
    term: fob.term,
    username: fob.term,
    password: fob.secret,
    topics,
    logger: o.logger,
    reconnectPeriod: 1000,
  });
  const signer = holderSigner({
    mode: "fob",
    key,
    term: fob.term,
    slot: payload.slot,
    credential: fob.credential,
  });
  return run(link, topics, signer, new ClockSeq(), o);
}
