import { type CliNode, command, EXIT } from "../common/cli.js";
import { decodeToken } from "../common/jws.js";
import type { TerminalWallet } from "../schemas/records.js";
import { type CredentialPayload, TokenType } from "../schemas/tokens.js";
import { describeCredential, localTimeZone } from "../terminal/credential-info.js";
import { readKey, readProfile, readWallet, resolveTerminalDir, terminalPaths } from "../terminal/files.js";
import { dirOption } from "./terminal-options.js";

/** One wallet key as `status --json` gives it: stored values (Unix seconds, schedules as data). */
export interface WalletKeyStatus {
  slot: string;
  tids: string[];
  gen: number;
  /** Why a target said this key is dead; it is not picked by default. */
  revoked?: string;
  /** The credential's claims; absent when the stored token cannot be read. */
  credential?: Omit<CredentialPayload, "v" | "tids" | "gen" | "slot" | "holder" | "jti">;
}

/** What `sparekey terminal status` shows: never the password, the seed or a token. */
export interface TerminalStatus {
  dir: string;
  term: string;
  user: string;
  broker_url: string;
  prefix: string;
  /** The CA the broker must chain to: given at login or pinned on first use; null on a plain connection. */
  tls: { ca_sha256: string; trust: "given" | "first_use" } | null;
  key: { kid: string; public_key: string } | null;
  last_seq: number;
  keys: WalletKeyStatus[];
}

function keyStatus(slot: string, entry: TerminalWallet["credentials"][string]): WalletKeyStatus {
  const out: WalletKeyStatus = { slot, tids: entry.tids, gen: entry.gen };
  if (entry.revoked !== undefined) out.revoked = entry.revoked;
  try {
    const {
      v: _v,
      tids: _t,
      gen: _g,
      slot: _s,
      holder: _h,
      jti: _j,
      ...claims
    } = decodeToken(entry.token, TokenType.credential).payload;
    out.credential = claims;
  } catch {
    // An unreadable token is shown as such: the wallet still names its slot and targets.
  }
  return out;
}

/** Read the terminal dir's profile, key and wallet into a status report. */
export function terminalStatus(dir: string): TerminalStatus {
  const profile = readProfile(dir);
  const key = readKey(dir, profile.term);
  const wallet = readWallet(dir, profile.term);
  return {
    dir,
    term: profile.term,
    user: profile.user,
    broker_url: profile.broker_url,
    prefix: profile.prefix,
    tls: profile.tls ? { ca_sha256: profile.tls.ca_sha256, trust: profile.tls.trust } : null,
    key: key ? { kid: key.kid, public_key: key.publicKeyB64 } : null,
    last_seq: wallet.last_seq,
    keys: Object.entries(wallet.credentials).map(([slot, entry]) => keyStatus(slot, entry)),
  };
}

const TRUST_TEXT = { given: "given at login", first_use: "pinned at first login" } as const;

/**
 * The report for a person: instants in `zone` (this machine's, named), schedules as text in the
 * target's local time (the terminal does not know the target's zone).
 */
export function formatTerminalStatus(s: TerminalStatus, zone: string): string {
  const lines = [
    `dir       ${s.dir}`,
    `terminal  ${s.term}`,
    `user      ${s.user}`,
    `broker    ${s.broker_url}`,
    `prefix    ${s.prefix}`,
    s.tls
      ? `CA        SHA-256 ${s.tls.ca_sha256} (${TRUST_TEXT[s.tls.trust]})`
      : "CA        none (plain connection)",
    s.key
      ? `key       ${s.key.kid} (public ${s.key.public_key})`
      : `key       none (${terminalPaths(s.dir).key})`,
    `last seq  ${s.last_seq}`,
    `wallet    ${s.keys.length} credential(s)`,
  ];
  for (const k of s.keys) {
    const head = `  slot ${k.slot} gen ${k.gen} targets ${k.tids.join(", ")}`;
    const mark = k.revoked !== undefined ? ` REVOKED (${k.revoked.replaceAll("_", " ")})` : "";
    if (!k.credential) {
      lines.push(`${head} (unreadable credential)${mark}`);
      continue;
    }
    const c = k.credential;
    lines.push(`${head} (${c.mode} key)${mark}`);
    const full: CredentialPayload = { ...c, v: 1, slot: k.slot, gen: k.gen, tids: k.tids, jti: "" };
    lines.push(...describeCredential(full, zone).map((l) => `    ${l}`));
  }
  return `${lines.join("\n")}\n`;
}

/** `sparekey terminal status`; `timeZone` overrides this machine's zone (tests). */
export function statusCommand(timeZone: string | undefined): CliNode {
  return command(
    {
      name: "sparekey terminal status",
      summary: "show the profile (without the password), the pinned CA, the key id and the wallet's keys",
      usage: "sparekey terminal status [--dir D] [--json]",
      options: {
        dir: dirOption,
        json: { type: "boolean", help: "print JSON (stored values: Unix seconds, schedules as data)" },
      },
    },
    (p, io) => {
      const status = terminalStatus(resolveTerminalDir(p.values.dir, {}));
      io.stdout.write(
        p.values.json
          ? `${JSON.stringify(status)}\n`
          : formatTerminalStatus(status, timeZone ?? localTimeZone()),
      );
      return EXIT.ok;
    },
  );
}
