import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { acquireInstanceLock } from "../../common/instance-lock.js";
import { silentLogger } from "../../common/log.js";
import {
  loadOrCreateKey,
  readWallet,
  terminalPaths,
  updateWallet,
  writeProfile,
} from "../../terminal/files.js";
import { tempDir } from "../helpers/wait.js";

const TOKEN = "aGVhZA.Ym9keQ.c2ln";

/** A terminal dir as `login` and `download` leave it, with two stored keys and kept lists. */
function loggedIn(): string {
  const dir = tempDir();
  writeProfile(dir, {
    v: 1,
    term: "phone-1",
    user: "alice",
    password: "alice-password-0123",
    broker_url: "mqtt://127.0.0.1:1",
    prefix: "sparekey/v1",
  });
  loadOrCreateKey(dir, "phone-1");
  updateWallet(dir, "phone-1", (w) => {
    w.credentials.a = { token: TOKEN, tids: ["lock-1"], gen: 1 };
    w.credentials.b = { token: TOKEN, tids: ["lock-1", "lock-2"], gen: 3 };
  });
  writeFileSync(join(dir, "carried.json"), JSON.stringify({ v: 1, term: "phone-1", registries: {} }));
  return dir;
}

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const exit = await runTerminal(argv, {
    stdout: { write: (t: string) => out.push(t) },
    stderr: { write: (t: string) => err.push(t) },
    env: {},
    logger: silentLogger(),
  });
  return { exit, out: out.join(""), err: err.join("") };
}

describe("terminal forget and logout", () => {
  it("forget deletes one stored key and leaves the others", async () => {
    const dir = loggedIn();
    expect(await run(["forget", "--slot", "b", "--dir", dir])).toEqual({
      exit: 0,
      out: "forgot slot b gen 3 for lock-1, lock-2\n",
      err: "",
    });
    expect(readWallet(dir, "phone-1").credentials).toEqual({ a: { token: TOKEN, tids: ["lock-1"], gen: 1 } });
    const again = await run(["forget", "--slot", "b", "--dir", dir]);
    expect({
      exit: again.exit,
      err: again.err.startsWith("error not_found: no stored credential for slot b"),
    }).toEqual({
      exit: 1,
      err: true,
    });
  });

  it("logout deletes the profile with its password and keeps the key pair and the wallet", async () => {
    const dir = loggedIn();
    const paths = terminalPaths(dir);
    const r = await run(["logout", "--dir", dir]);
    expect(r).toEqual({
      exit: 0,
      out: `deleted ${paths.profile}\nkey pair and wallet kept (--all deletes them)\n`,
      err: "",
    });
    expect([paths.profile, paths.key, paths.wallet].map(existsSync)).toEqual([false, true, true]);
    // The wallet names its own terminal: a key can still be forgotten without a profile.
    expect((await run(["forget", "--slot", "a", "--dir", dir])).exit).toBe(0);
  });

  it("logout --all also deletes the key pair, the wallet and the kept lists", async () => {
    const dir = loggedIn();
    const paths = terminalPaths(dir);
    const all = [paths.profile, paths.key, paths.wallet, join(dir, "carried.json")];
    expect(await run(["logout", "--all", "--dir", dir])).toEqual({
      exit: 0,
      out: `deleted ${all.join(", ")}\n`,
      err: "",
    });
    expect(all.map(existsSync)).toEqual([false, false, false, false]);
  });

  it("refuses to forget or log out while `terminal use` holds the dir", async () => {
    const dir = loggedIn();
    const lock = acquireInstanceLock(dir, { what: "terminal dir" });
    try {
      const forget = await run(["forget", "--slot", "a", "--dir", dir]);
      const logout = await run(["logout", "--all", "--dir", dir]);
      expect([forget.exit, logout.exit, forget.err.split(":")[0], logout.err.split(":")[0]]).toEqual([
        1,
        1,
        "error instance_locked",
        "error instance_locked",
      ]);
      expect(existsSync(terminalPaths(dir).key)).toBe(true);
    } finally {
      lock.release();
    }
  });
});
