import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import type { TerminalWallet } from "../../schemas/records.js";
import {
  loadOrCreateKey,
  readKey,
  readProfile,
  readWallet,
  terminalPaths,
  updateWallet,
  writeProfile,
} from "../../terminal/files.js";
import { selectCredential } from "../../terminal/use.js";
import {
  makeIssuer,
  mintCredential,
  mintRegistry,
  mintRevocations,
  registryEntry,
} from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

const TOKEN = "aGVhZA.Ym9keQ.c2ln";

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function thrown(fn: () => unknown): SparekeyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SparekeyError) return err;
    throw err;
  }
  throw new Error("expected a SparekeyError");
}

describe("terminal files", () => {
  it("writes the key file 0600 on first use and reads the same key back", () => {
    const dir = tempDir();
    const first = loadOrCreateKey(dir, "phone-1");
    const second = loadOrCreateKey(dir, "phone-1");
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.key.publicKeyB64).toBe(first.key.publicKeyB64);
    expect(readKey(dir, "phone-1")?.kid).toBe(first.key.kid);
    expect(mode(terminalPaths(dir).key)).toBe(0o600);
  });

  it("writes the wallet 0600 and reads it back validated", () => {
    const dir = tempDir();
    updateWallet(dir, "phone-1", (w) => {
      w.credentials.slot_a = { token: TOKEN, tids: ["lock-1"], gen: 2 };
      w.last_seq = 42;
    });
    expect(mode(terminalPaths(dir).wallet)).toBe(0o600);
    expect(readWallet(dir, "phone-1")).toEqual({
      v: 1,
      term: "phone-1",
      credentials: { slot_a: { token: TOKEN, tids: ["lock-1"], gen: 2 } },
      last_seq: 42,
    });
  });

  it("gives an empty wallet when none was written yet", () => {
    expect(readWallet(tempDir(), "phone-1")).toEqual({ v: 1, term: "phone-1", credentials: {}, last_seq: 0 });
  });

  it("refuses a corrupted wallet with config_invalid naming the file", () => {
    const dir = tempDir();
    const path = terminalPaths(dir).wallet;
    writeFileSync(path, '{"v":1,"term":"phone-1","credentials":{}');
    const err = thrown(() => readWallet(dir, "phone-1"));
    expect(err.code).toBe("config_invalid");
    expect(err.message).toContain(path);
  });

  it("refuses a wallet whose fields break the schema with config_invalid naming the file and field", () => {
    const dir = tempDir();
    const path = terminalPaths(dir).wallet;
    writeFileSync(path, JSON.stringify({ v: 1, term: "phone-1", credentials: {}, last_seq: -1 }));
    const err = thrown(() => readWallet(dir, "phone-1"));
    expect(err.code).toBe("config_invalid");
    expect(err.message).toContain(path);
    expect(err.message).toContain("/last_seq");
  });

  it("refuses a key file made for another terminal", () => {
    const dir = tempDir();
    loadOrCreateKey(dir, "phone-1");
    expect(thrown(() => loadOrCreateKey(dir, "phone-2")).code).toBe("terminal_key_mismatch");
  });

  it("writes the profile 0600 and tells the user to log in when there is none", () => {
    const dir = tempDir();
    expect(thrown(() => readProfile(dir)).code).toBe("not_found");
    const profile = {
      v: 1 as const,
      term: "phone-1",
      user: "alice",
      password: "pw",
      broker_url: "mqtt://127.0.0.1:9",
      prefix: "sparekey/v1",
    };
    writeProfile(dir, profile);
    expect(mode(join(dir, "profile.json"))).toBe(0o600);
    expect(readProfile(dir)).toEqual(profile);
  });

  it("picks the one usable key that opens the target, or the slot asked for", () => {
    const wallet = walletOf({
      old: { token: TOKEN, tids: ["lock-1"], gen: 1, revoked: "old_generation" },
      new: { token: TOKEN, tids: ["lock-1", "lock-2"], gen: 2 },
      other: { token: TOKEN, tids: ["lock-3"], gen: 9 },
    });
    expect(selectCredential(wallet, "lock-1")).toEqual({ slot: "new", token: TOKEN, gen: 2 });
    expect(selectCredential(wallet, "lock-1", "old")).toEqual({ slot: "old", token: TOKEN, gen: 1 });
    expect(thrown(() => selectCredential(wallet, "lock-9")).code).toBe("not_found");
  });

  it("never picks an expired key by default, and says why none is usable", () => {
    const wallet = walletOf({
      gone: { token: credential("gone", 1, NOW_S - 1), tids: ["lock-1"], gen: 1 },
      live: { token: credential("live", 1, NOW_S + 3600), tids: ["lock-1"], gen: 1 },
    });
    const ctx = { nowMs: NOW_S * 1000, zone: "UTC" };
    expect(selectCredential(wallet, "lock-1", undefined, ctx).slot).toBe("live");
    expect(selectCredential(wallet, "lock-1", "gone", ctx).slot).toBe("gone");
    const onlyGone = walletOf({
      gone: { token: credential("gone", 1, NOW_S - 1), tids: ["lock-1"], gen: 1 },
    });
    expect(thrown(() => selectCredential(onlyGone, "lock-1", undefined, ctx)).message).toBe(
      "no usable credential for target lock-1 (not usable: slot gone gen 1 expires 2030-01-01 00:59:59 UTC+00:00 [expired]); run `sparekey terminal download --target lock-1`",
    );
  });

  it("never picks a key the kept fleet list or the target's registry revokes", () => {
    const wallet = walletOf({
      fleet: { token: credential("fleet", 2), tids: ["lock-1"], gen: 2 },
      reg: { token: credential("reg", 1), tids: ["lock-1"], gen: 1 },
      ok: { token: credential("ok", 1), tids: ["lock-1"], gen: 1 },
    });
    const revocations = mintRevocations(issuer, { revoked: [{ slot: "fleet", below_gen: 3 }] });
    const registry = mintRegistry(issuer, "lock-1", {
      slots: [registryEntry("reg", { status: "revoked" }), registryEntry("ok")],
    });
    expect(selectCredential(wallet, "lock-1", undefined, { revocations, registry }).slot).toBe("ok");
  });

  it("lists the usable keys with generation and expiry in local time when several open the target", () => {
    const wallet = walletOf({
      a: { token: credential("a", 1, NOW_S + 3600), tids: ["lock-1"], gen: 1 },
      b: { token: credential("b", 4), tids: ["lock-1"], gen: 4 },
    });
    const err = thrown(() =>
      selectCredential(wallet, "lock-1", undefined, { nowMs: NOW_S * 1000, zone: "Europe/Berlin" }),
    );
    expect({ code: err.code, message: err.message }).toEqual({
      code: "bad_request",
      message:
        "several keys open target lock-1: slot a gen 1 expires 2030-01-01 03:00:00 UTC+01:00; slot b gen 4 never expires; pass --slot to choose one",
    });
  });
});

const NOW_S = Date.UTC(2030, 0, 1, 1, 0, 0) / 1000;
const issuer = makeIssuer();

function credential(slot: string, gen: number, exp?: number): string {
  return mintCredential(issuer, { slot, gen, tids: ["lock-1"], ...(exp !== undefined ? { exp } : {}) });
}

function walletOf(credentials: TerminalWallet["credentials"]): TerminalWallet {
  return { v: 1, term: "phone-1", credentials, last_seq: 0 };
}
