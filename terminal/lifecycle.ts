import { rmSync } from "node:fs";
import { readJsonFile } from "../common/atomic-file.js";
import { SparekeyError } from "../common/errors.js";
import { TerminalWallet } from "../schemas/records.js";
import { carriedPath } from "./carried.js";
import { terminalPaths, updateWallet } from "./files.js";

/** The end of a phone's keys and login: `terminal forget` and `terminal logout`. */

export interface ForgottenCredential {
  readonly slot: string;
  readonly gen: number;
  readonly tids: readonly string[];
}

/**
 * Delete the stored credential of `slot`. The wallet names its own terminal, so this works after a
 * logout too (a profile is not needed to clean up).
 */
export function forgetCredential(dir: string, slot: string): ForgottenCredential {
  const path = terminalPaths(dir).wallet;
  const wallet = readJsonFile(path, TerminalWallet, "terminal wallet");
  let forgotten: ForgottenCredential | undefined;
  if (wallet) {
    updateWallet(dir, wallet.term, (w) => {
      const entry = Object.hasOwn(w.credentials, slot) ? w.credentials[slot] : undefined;
      if (!entry) return;
      forgotten = { slot, gen: entry.gen, tids: entry.tids };
      w.credentials = Object.fromEntries(Object.entries(w.credentials).filter(([s]) => s !== slot));
    });
  }
  if (!forgotten) throw new SparekeyError("not_found", `no stored credential for slot ${slot} in ${path}`);
  return forgotten;
}

/**
 * Delete the profile (password, broker, pinned CA). The key pair and the wallet stay unless `all`: the
 * stored keys are bound to the key pair, so logging in again with the same serial uses them again;
 * with `all` they, and the kept lists, go too. Returns the files deleted.
 */
export function logout(dir: string, all: boolean): string[] {
  const paths = terminalPaths(dir);
  const targets = all ? [paths.profile, paths.key, paths.wallet, carriedPath(dir)] : [paths.profile];
  const deleted: string[] = [];
  for (const path of targets) {
    try {
      rmSync(path);
      deleted.push(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
  return deleted;
}
