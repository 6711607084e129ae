import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatRow, localTime, parseSince } from "../../cli/admin/log.js";
import { runAdmin } from "../../cli/admin.js";
import { openKeyServerState } from "../../keyserver/state.js";
import type { AccessLogRow } from "../../keyserver/store/store.js";
import { tempDataDir } from "../helpers/keyserver.js";
import { tempDir } from "../helpers/wait.js";

async function admin(dataDir: string, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAdmin(["--data", dataDir, ...argv], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, out: out.join(""), err: err.join("") };
}

describe("sparekey admin dashboard and log", () => {
  it("adds dashboards with a password from a file, refusing both or neither of --targets and --all", async () => {
    const dataDir = await tempDataDir();
    const state = openKeyServerState(dataDir);
    await state.store.addTarget({ tid: "door-1", secretHash: "sha256$not-checked" }, "admin");
    await state.close();
    const pw = join(tempDir(), "pw");
    writeFileSync(pw, "dashboard-password\n");
    expect(
      await admin(
        dataDir,
        "dashboard",
        "add",
        "--user",
        "wall",
        "--targets",
        "door-1",
        "--password-file",
        pw,
      ),
    ).toMatchObject({
      code: 0,
      out: "dashboard wall added, watching door-1\n",
    });
    expect((await admin(dataDir, "dashboard", "add", "--user", "x", "--password-file", pw)).code).not.toBe(0);
    expect(
      (
        await admin(
          dataDir,
          "dashboard",
          "add",
          "--user",
          "x",
          "--all",
          "--targets",
          "door-1",
          "--password-file",
          pw,
        )
      ).code,
    ).not.toBe(0);
    expect(
      (await admin(dataDir, "dashboard", "add", "--user", "ops", "--all", "--password-file", pw)).code,
    ).toBe(0);
    const listed = await admin(dataDir, "dashboard", "list", "--json");
    expect(JSON.parse(listed.out)).toMatchObject([
      { id: "ops", tids: "all" },
      { id: "wall", tids: ["door-1"] },
    ]);
  });

  it("shows the access log filtered, as JSON and for people", async () => {
    const dataDir = await tempDataDir();
    const state = openKeyServerState(dataDir);
    const now = Date.now();
    await state.store.appendAccessLog([
      { received: now - 3 * 86_400_000, event: { v: 1, tid: "door-1", ts: now, type: "auth_established" } },
      {
        received: now,
        event: {
          v: 1,
          tid: "door-1",
          ts: now,
          type: "auth_refused",
          count: 3,
          reason: "bad_frame_signature",
        },
      },
      {
        received: now,
        event: { v: 1, tid: "door-2", ts: now, type: "clock_alarm", reason: "clock_untrusted" },
      },
    ]);
    await state.close();
    const json = await admin(dataDir, "log", "--target", "door-1", "--since", "1d", "--json");
    expect(JSON.parse(json.out)).toMatchObject([{ tid: "door-1", type: "auth_refused", count: 3 }]);
    const text = await admin(dataDir, "log");
    expect(text.out.trimEnd().split("\n")).toHaveLength(4);
    expect(text.out).toContain("reason bad_frame_signature, ×3");
    expect(text.out.endsWith("3 entries\n")).toBe(true);
  });

  it("reads --since as a span or a date and prints times with the operator's offset", () => {
    expect(parseSince("2h", 10_000_000)).toBe(10_000_000 - 7_200_000);
    expect(parseSince("2024-05-01T08:00:00Z", 0)).toBe(Date.UTC(2024, 4, 1, 8));
    expect(() => parseSince("yesterday-ish", 0)).toThrow(/neither a span/);
    expect(localTime(Date.UTC(2024, 4, 1, 8))).toMatch(/^2024-05-01 \d\d:00:00 [+-]\d\d:\d\d$/);
    const row: AccessLogRow = {
      seq: 1,
      received: 0,
      tid: "door-1",
      type: "lockout",
      ts: 0,
      term: "p1",
      user: "alice",
      count: 5,
      event: { v: 1, tid: "door-1", ts: 0, type: "lockout", term: "p1", count: 5, until: 60_000 },
    };
    expect(formatRow(row)).toMatch(/door-1 +lockout +alice \(p1\) +×5, until /);
  });
});
