import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { generateSigningKey, type SigningKey, signingKeyFromSeed } from "../common/keys.js";
import { TerminalProfile } from "../schemas/config.js";
import { TerminalKeyFile, TerminalWallet } from "../schemas/records.js";

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
