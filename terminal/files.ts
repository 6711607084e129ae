import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { decodeToken } from "../common/jws.js";
import { generateSigningKey, type SigningKey, signingKeyFromSeed } from "../common/keys.js";
import { formatInstant, localZone } from "../common/time-zone.js";
import { TerminalProfile } from "../schemas/config.js";
import { TerminalKeyFile, TerminalWallet } from "../schemas/records.js";
import { TokenType } from "../schemas/tokens.js";

/** The terminal dir: `--dir`, else SPAREKEY_TERMINAL_DIR, else ~/.sparekey/terminal. */
export function resolveTerminalDir(
  flag: string | undefined,
  env: Record<string, string | undefined> = process.env,
): string {
  return flag ?? env.SPAREKEY_TERMINAL_DIR ?? join(homedir(), ".sparekey", "terminal");
}

export function terminalPaths(dir: string): { profile: string; key: string; wallet: string } {
  return { profile: join(dir, "profile.json"), key: join(dir, "key.json"), wallet: join(dir, "wallet.json") };
}

/** Created 0700; an existing dir is left as it is (it may be one the user chose on purpose). */
export function ensureTerminalDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export function readProfile(dir: string): TerminalProfile {
  const path = terminalPaths(dir).profile;
  const profile = readJsonFile(path, TerminalProfile, "terminal profile");
  if (!profile) {
    throw new SparekeyError("not_found", `no terminal profile at ${path}; run \`sparekey terminal login\``);
  }
  return profile;
}

export function writeProfile(dir: string, profile: TerminalProfile): void {
  ensureTerminalDir(dir);
  writeJsonAtomic(terminalPaths(dir).profile, profile, 0o600);
}

export function readKey(dir: string, term: string): SigningKey | undefined {
  const path = terminalPaths(dir).key;
  const file = readJsonFile(path, TerminalKeyFile, "terminal key file");
  if (!file) return undefined;
  if (file.term !== term) {
    throw new SparekeyError("terminal_key_mismatch", `${path} belongs to terminal ${file.term}, not ${term}`);
  }
  return signingKeyFromSeed(Buffer.from(file.seed, "base64url"));
}

/** The terminal's own key pair, made on first use. The seed never leaves this file. */
export function loadOrCreateKey(dir: string, term: string): { key: SigningKey; created: boolean } {
  const existing = readKey(dir, term);
  if (existing) return { key: existing, created: false };
  ensureTerminalDir(dir);
  const { key, seed } = generateSigningKey();
  const file: TerminalKeyFile = { v: 1, term, seed: seed.toString("base64url") };
  writeJsonAtomic(terminalPaths(dir).key, file, 0o600);
  return { key, created: true };
}

export function emptyWallet(term: string): TerminalWallet {
  return { v: 1, term, credentials: {}, last_seq: 0 };
}

export function readWallet(dir: string, term: string): TerminalWallet {
  const path = terminalPaths(dir).wallet;
  const wallet = readJsonFile(path, TerminalWallet, "terminal wallet");
  if (!wallet) return emptyWallet(term);
  if (wallet.term !== term) {
    throw new SparekeyError("config_invalid", `terminal wallet ${path} belongs to terminal ${wallet.term}`);
  }
  return wallet;
}

/**
 * Read, change, write back whole. Re-reading first keeps a `download` in another process and the
 * frame loop's seq writes from undoing each other's changes.
 */
export function updateWallet(dir: string, term: string, change: (w: TerminalWallet) => void): TerminalWallet {
  const wallet = readWallet(dir, term);
  change(wallet);
  ensureTerminalDir(dir);
  writeJsonAtomic(terminalPaths(dir).wallet, wallet, 0o600);
  return wallet;
}

/** What a stored credential looks like to `selectCredential`. */
export interface WalletChoice {
  slot: string;
  token: string;
  gen: number;
}

/** What selection knows beyond the wallet: the time, and lists the terminal keeps to carry. */
export interface SelectionContext {
  /** Unix ms; Date.now by default. */
  nowMs?: number;
  /** Zone the error shows expiry times in (default: this machine's). */
  zone?: string;
  /** The kept fleet revocation list and the target's registry (tokens, as carried.ts keeps them). */
  revocations?: string | undefined;
  registry?: string | undefined;
}

interface Candidate extends WalletChoice {
  exp: number | undefined;
  /** Why it is not picked by default; undefined when usable. */
  dead: string | undefined;
}

/**
 * The wallet entry that opens `tid`: the slot asked for (whatever its state: the target will say why it
 * refuses), else the one usable slot. Expired credentials and those revoked (a verdict said so, or the
 * kept fleet list or registry says so) are never picked by default; several usable slots are an error
 * that lists them, so the phone never guesses which key to spend.
 */
export function selectCredential(
  wallet: TerminalWallet,
  tid: string,
  slot?: string,
  context: SelectionContext = {},
): WalletChoice {
  const nowS = Math.floor((context.nowMs ?? Date.now()) / 1000);
  const candidates: Candidate[] = [];
  for (const [s, entry] of Object.entries(wallet.credentials)) {
    if (!entry.tids.includes(tid) || (slot !== undefined && s !== slot)) continue;
    const exp = expOf(entry.token);
    const listed = revokedByLists(s, entry.gen, tid, context);
    const dead =
      entry.revoked !== undefined
        ? `revoked: a target said ${entry.revoked}`
        : exp !== undefined && exp <= nowS
          ? "expired"
          : listed;
    candidates.push({ slot: s, token: entry.token, gen: entry.gen, exp, dead });
  }
  const pick = ({ slot: s, token, gen }: Candidate): WalletChoice => ({ slot: s, token, gen });
  const first = candidates[0];
  if (slot !== undefined && first) return pick(first);
  const usable = candidates.filter((c) => c.dead === undefined);
  const only = usable[0];
  if (only && usable.length === 1) return pick(only);
  const zone = context.zone ?? localZone();
  const list = (cs: Candidate[]) => cs.map((c) => describeCandidate(c, zone)).join("; ");
  if (usable.length > 1) {
    throw new SparekeyError(
      "bad_request",
      `several keys open target ${tid}: ${list(usable)}; pass --slot to choose one`,
    );
  }
  const which = slot === undefined ? `target ${tid}` : `target ${tid} in slot ${slot}`;
  const skipped = candidates.length > 0 ? ` (not usable: ${list(candidates)})` : "";
  throw new SparekeyError(
    "not_found",
    `no usable credential for ${which}${skipped}; run \`sparekey terminal download --target ${tid}\``,
  );
}

function describeCandidate(c: Candidate, zone: string): string {
  const exp = c.exp === undefined ? "never expires" : `expires ${formatInstant(c.exp, zone)}`;
  return `slot ${c.slot} gen ${c.gen} ${exp}${c.dead === undefined ? "" : ` [${c.dead}]`}`;
}

function expOf(token: string): number | undefined {
  try {
    return decodeToken(token, TokenType.credential).payload.exp;
  } catch {
    return undefined;
  }
}

/**
 * The kept lists came from the key server's retained topics; the terminal holds no issuer key, so they
 * only steer which key to pick by default, never what a target accepts.
 */
function revokedByLists(slot: string, gen: number, tid: string, c: SelectionContext): string | undefined {
  try {
    if (c.revocations !== undefined) {
      const { revoked } = decodeToken(c.revocations, TokenType.revocations).payload;
      const hit = revoked.find((r) => r.slot === slot && (r.below_gen === undefined || gen < r.below_gen));
      if (hit) return "revoked: in the fleet revocation list";
    }
    if (c.registry !== undefined) {
      const { payload } = decodeToken(c.registry, TokenType.registry);
      const entry = payload.tid === tid ? payload.slots.find((e) => e.slot === slot) : undefined;
      if (entry?.status === "revoked") return "revoked: in the target's registry";
      if (entry && gen < entry.min_gen) return "revoked: a newer generation replaced it";
    }
  } catch {
    // An unreadable kept list says nothing.
  }
  return undefined;
}
