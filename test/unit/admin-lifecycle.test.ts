import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { verifyPassword, verifySecret } from "../../keyserver/passwords.js";
import { openKeyServerState } from "../../keyserver/state.js";
import { TargetConfig } from "../../schemas/config.js";
import { validator } from "../../schemas/validate.js";
import { tempDataDir } from "../helpers/keyserver.js";

/** The admin CLI on a fresh data dir (a real SQLite store), with alice, phone p1, door-1 and slot s1. */
async function seeded() {
  const data = await tempDataDir();
  const dir = dirname(data);
  const run = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runAdmin(["--data", data, ...argv], {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
      env: { SPAREKEY_PASSWORD: "first-password" },
    });
    return { code, out, err };
  };
  const ok = async (...argv: string[]) => {
    const r = await run(...argv);
    expect(r, argv.join(" ")).toMatchObject({ code: 0, err: "" });
    return r.out;
  };
  await ok("user", "add", "--user", "alice");
  await ok("terminal", "add", "--serial", "p1", "--user", "alice");
  await ok("target", "pair", "--tid", "door-1", "--out", join(dir, "door-1.json"));
  await ok("slot", "create", "--slot", "s1", "--target", "door-1");
  /** The store as the key server would read it. */
  const store = () => {
    const state = openKeyServerState(data);
    onTestFinished(() => state.close());
    return state.store;
  };
  const json = async (kind: string) => JSON.parse((await ok("list", kind, "--json")).trim());
  return { dir, data, run, ok, store, json };
}

describe("sparekey admin: the lifecycle", () => {
  it("user passwd stores a new hash: the new password verifies and the old one no longer does", async () => {
    const s = await seeded();
    const pw = join(s.dir, "pw");
    writeFileSync(pw, "second-password\n");
    expect(await s.ok("user", "passwd", "--user", "alice", "--password-file", pw)).toBe(
      "password of user alice changed\n",
    );
    const creds = await s.store().clientCredentials("p1");
    if (creds?.kind !== "phone") throw new Error("p1 is a phone");
    expect(await verifyPassword("second-password", creds.passwordHash)).toBe(true);
    expect(await verifyPassword("first-password", creds.passwordHash)).toBe(false);
    writeFileSync(pw, "short\n");
    expect(await s.run("user", "passwd", "--user", "alice", "--password-file", pw)).toMatchObject({
      code: 2,
      err: "error bad_request: a password has 8 to 1024 characters\n",
    });
    writeFileSync(pw, "third-password\n");
    expect(await s.run("user", "passwd", "--user", "bob", "--password-file", pw)).toMatchObject({
      code: 1,
      err: "error not_found: user bob not found\n",
    });
  });

  it("terminal disable --revoke raises the floor past a fob's key; enable lets it in; remove keeps it on record", async () => {
    const s = await seeded();
    await s.ok("write-fob", "--slot", "s1", "--fob", "fob-1", "--out", join(s.dir, "fob.json"));
    expect(await s.ok("terminal", "disable", "--serial", "fob-1", "--revoke")).toBe(
      "terminal fob-1 disabled; floor raised on s1 (below gen 2)\n",
    );
    expect(await s.json("slots")).toMatchObject([{ slot: "s1", gen: 1, min_gen: 2, status: "active" }]);
    expect(await s.store().clientCredentials("fob-1")).toMatchObject({ kind: "fob", disabled: true });
    // Disabling again without --revoke changes no floor.
    expect(await s.ok("terminal", "disable", "--serial", "fob-1")).toBe("terminal fob-1 disabled\n");
    expect(await s.ok("terminal", "enable", "--serial", "fob-1")).toBe("terminal fob-1 enabled\n");
    expect(await s.store().clientCredentials("fob-1")).toMatchObject({ kind: "fob", disabled: false });
    expect(await s.run("terminal", "remove", "--serial", "fob-1")).toEqual({
      code: 1,
      out: "",
      err: "error in_use: terminal fob-1 was issued keys and stays on record: disable it instead\n",
    });
    expect(await s.ok("terminal", "remove", "--serial", "p1")).toBe("terminal p1 removed\n");
    expect((await s.json("terminals")).map((t: { serial: string }) => t.serial)).toEqual(["fob-1"]);
  });

  it("user disable stops the user's phones until enabled; remove refuses while terminals or active grants remain", async () => {
    const s = await seeded();
    expect(await s.ok("user", "disable", "--user", "alice")).toBe("user alice disabled\n");
    expect(await s.store().getTerminal("p1")).toMatchObject({ disabled: false, user_disabled: true });
    expect(await s.json("users")).toEqual([
      { id: "alice", created: expect.any(Number), disabled: true, devices: ["p1"] },
    ]);
    await s.ok("user", "enable", "--user", "alice");
    expect(await s.store().getTerminal("p1")).not.toHaveProperty("user_disabled");
    await s.ok("grant", "--slot", "s1", "--user", "alice", "--mode", "relay");
    expect((await s.run("user", "remove", "--user", "alice")).err).toBe(
      "error in_use: user alice still has terminals: remove or disable them first\n",
    );
    await s.ok("terminal", "remove", "--serial", "p1");
    expect((await s.run("user", "remove", "--user", "alice")).err).toBe(
      "error in_use: user alice still holds active grants: end them first\n",
    );
    await s.ok("grant", "end", "--user", "alice", "--slot", "s1");
    expect(await s.ok("user", "remove", "--user", "alice")).toBe("user alice removed\n");
    expect(await s.json("users")).toEqual([]);
    expect(await s.json("grants")).toEqual([]);
  });

  it("grant edit sets and clears limits; grant end ends every mode; granting again makes it active with new limits", async () => {
    const s = await seeded();
    await s.ok("grant", "--slot", "s1", "--user", "alice", "--max-uses", "2", "--exp", "@1900000000");
    await s.ok("grant", "add", "--slot", "s1", "--user", "alice", "--mode", "relay");
    const edit = await s.ok(
      "grant",
      "edit",
      "--slot",
      "s1",
      "--user",
      "alice",
      "--no-max-uses",
      "--nbf",
      "@1800000000",
      "--schedule",
      "Mon-Fri 08:00-18:00",
      "--first-use-ttl",
      "2h",
      "--tz",
      "Europe/Berlin",
    );
    expect(edit).toBe(
      "nbf: @1800000000 read in UTC = 2027-01-15T08:00:00Z (2027-01-15 09:00:00 Europe/Berlin)\nstored grant of user alice on slot s1 edited\n",
    );
    expect((await s.json("grants"))[1]).toMatchObject({
      mode: "stored",
      nbf: 1_800_000_000,
      exp: 1_900_000_000,
      max_uses: null,
      first_use_ttl_s: 7200,
      schedule: [{ days: [1, 2, 3, 4, 5], start: "08:00", end: "18:00" }],
    });
    const table = await s.ok("list", "grants", "--tz", "Europe/Berlin");
    expect(table).toContain(
      "from 2027-01-15 09:00:00 UTC+01:00; until 2030-03-17 18:46:40 UTC+01:00; Mon-Fri 08:00-18:00 (target's zone); expires 2h after first use",
    );
    expect(table).toMatch(/alice\s+s1\s+relay\s+active\s+none/);
    expect(
      (await s.run("grant", "edit", "--slot", "s1", "--user", "alice", "--exp", "@1", "--no-exp")).err,
    ).toBe("error bad_request: sparekey admin grant edit: --exp and --no-exp contradict\n");
    expect(
      (await s.run("grant", "edit", "--slot", "s1", "--user", "alice", "--mode", "relay", "--max-uses", "3"))
        .code,
    ).toBe(2);
    expect(await s.ok("revoke-grant", "--user", "alice", "--slot", "s1")).toBe(
      "stored and relay grant of user alice on slot s1 revoked\n",
    );
    expect((await s.run("grant", "end", "--user", "alice", "--slot", "s1")).err).toBe(
      "error not_found: user alice holds no active grant on s1\n",
    );
    await s.ok("grant", "--slot", "s1", "--user", "alice", "--max-uses", "5");
    expect(
      (await s.json("grants")).map((g: { mode: string; status: string; max_uses: number | null }) => [
        g.mode,
        g.status,
        g.max_uses,
      ]),
    ).toEqual([
      ["relay", "revoked", null],
      ["stored", "active", 5],
    ]);
  });

  it("target pair --force re-pairs an existing tid with a new secret; without it the tid is taken", async () => {
    const s = await seeded();
    const again = join(s.dir, "again.json");
    expect(await s.run("target", "pair", "--tid", "door-1", "--out", again)).toMatchObject({
      code: 1,
      err: "error already_exists: target door-1: id already in use\n",
    });
    await s.ok(
      "target",
      "pair",
      "--tid",
      "door-1",
      "--out",
      again,
      "--force",
      "--time-zone",
      "Europe/Berlin",
    );
    const config = validator(TargetConfig).parse(JSON.parse(readFileSync(again, "utf8")));
    const old = validator(TargetConfig).parse(JSON.parse(readFileSync(join(s.dir, "door-1.json"), "utf8")));
    const creds = await s.store().clientCredentials("door-1");
    if (creds?.kind !== "target") throw new Error("door-1 is a target");
    expect(verifySecret(config.secret, creds.secretHash)).toBe(true);
    expect(verifySecret(old.secret, creds.secretHash)).toBe(false);
    expect(config.time_zone).toBe("Europe/Berlin");
    expect(await s.json("slots")).toMatchObject([{ slot: "s1", tids: ["door-1"] }]);
    expect(
      (await s.run("target", "rotate-secret", "--tid", "door-9", "--out", join(s.dir, "x.json"))).err,
    ).toBe("error not_found: target door-9 not found\n");
  });

  it("audits every lifecycle change", async () => {
    const s = await seeded();
    await s.ok("user", "passwd", "--user", "alice");
    await s.ok("user", "disable", "--user", "alice");
    await s.ok("user", "enable", "--user", "alice");
    await s.ok("terminal", "disable", "--serial", "p1");
    await s.ok("terminal", "enable", "--serial", "p1");
    await s.ok("grant", "--slot", "s1", "--user", "alice");
    await s.ok("grant", "edit", "--slot", "s1", "--user", "alice", "--max-uses", "2");
    await s.ok("grant", "end", "--slot", "s1", "--user", "alice");
    await s.ok("grant", "--slot", "s1", "--user", "alice");
    await s.ok("target", "rotate-secret", "--tid", "door-1", "--out", join(s.dir, "new.json"));
    await s.ok("terminal", "remove", "--serial", "p1");
    const audit = JSON.parse((await s.ok("audit", "--json")).trim()) as { op: string; outcome: string }[];
    expect(audit.slice(4).map((a) => `${a.op} ${a.outcome}`)).toEqual([
      "user.passwd ok",
      "user.disable ok",
      "user.enable ok",
      "terminal.disable ok",
      "terminal.enable ok",
      "grant.add ok",
      "grant.edit ok",
      "grant.revoke ok",
      "grant.add ok",
      "target.secret ok",
      "terminal.remove ok",
    ]);
    expect(JSON.stringify(audit)).not.toContain("first-password");
  });
});
