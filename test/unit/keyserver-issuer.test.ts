import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runAdmin } from "../../cli/admin.js";
import { initDataDir } from "../../keyserver/data-dir.js";
import { Issuer } from "../../keyserver/issuer.js";
import { openKeyServerState } from "../../keyserver/state.js";
import { tempDir } from "../helpers/wait.js";

/** `sparekey admin issuer rotate|list|retire` on a data dir, as an operator runs them. */
async function dataDir() {
  const data = join(tempDir(), "data");
  const made = await initDataDir(data);
  const run = async (...argv: string[]) => {
    let out = "";
    let err = "";
    const code = await runAdmin(["--data", data, "issuer", ...argv], {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    });
    return { code, out, err };
  };
  return { data, first: made.kid, run };
}

async function auditOps(data: string): Promise<{ op: string; subject: string; outcome: string }[]> {
  const state = openKeyServerState(data);
  try {
    return (await state.store.auditChain()).rows
      .filter((r) => r.op.startsWith("issuer_"))
      .map((r) => ({ op: r.op, subject: r.subject, outcome: r.outcome }));
  } finally {
    await state.close();
  }
}

describe("sparekey admin issuer", () => {
  it("rotate makes a new active key and keeps the old one trusted; both are audited and listed", async () => {
    const { data, first, run } = await dataDir();
    const r = await run("rotate");
    expect(r.code).toBe(0);
    const issuer = Issuer.load(join(data, "issuer.json"));
    const second = issuer.signingKey.kid;
    expect(second).not.toBe(first);
    expect(r.out).toBe(`issuer key ${second} active; 0 target registries to republish\n`);
    expect(issuer.publicKeys().map((k) => k.kid)).toEqual([first, second]);
    expect(issuer.registryIssuers().map((k) => k.kid)).toEqual([first, second]);
    // Lists go out under the oldest key every target trusts; new signatures under the new one.
    expect(issuer.listSigningKey.kid).toBe(first);
    expect(statSync(join(data, "issuer.json")).mode & 0o777).toBe(0o600);
    const listed = JSON.parse((await run("list", "--json")).out) as unknown;
    expect(listed).toEqual([
      { kid: first, created: expect.any(Number), active: false },
      { kid: second, created: expect.any(Number), active: true },
    ]);
    expect(await auditOps(data)).toEqual([{ op: "issuer_rotate", subject: second, outcome: "ok" }]);
  });

  it("retire refuses the active key and an unknown kid (audited), and drops an old key from what targets trust", async () => {
    const { data, first, run } = await dataDir();
    const refused = await run("retire", "--kid", first);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(/forbidden: .*active key/);
    await run("retire", "--kid", first);
    await run("rotate");
    const unknown = "A".repeat(43);
    expect((await run("retire", "--kid", unknown)).err).toMatch(/not_found/);
    expect(await run("retire", "--kid", first)).toMatchObject({ code: 0 });
    expect((await run("retire", "--kid", first)).err).toMatch(/already_exists/);
    const issuer = Issuer.load(join(data, "issuer.json"));
    const second = issuer.signingKey.kid;
    expect(issuer.publicKeys().map((k) => k.kid)).toEqual([second]);
    expect(issuer.keyForKid(first)).toBeUndefined();
    expect(issuer.listSigningKey.kid).toBe(second);
    expect(issuer.list().find((k) => k.kid === first)?.retired).toEqual(expect.any(Number));
    expect(await auditOps(data)).toEqual([
      { op: "issuer_retire", subject: first, outcome: "forbidden" },
      { op: "issuer_retire", subject: first, outcome: "forbidden" },
      { op: "issuer_rotate", subject: second, outcome: "ok" },
      { op: "issuer_retire", subject: unknown, outcome: "not_found" },
      { op: "issuer_retire", subject: first, outcome: "ok" },
      { op: "issuer_retire", subject: first, outcome: "already_exists" },
    ]);
  });

  it("a key server's issuer picks up a rotation another process wrote", async () => {
    const { data, first, run } = await dataDir();
    const running = Issuer.load(join(data, "issuer.json"));
    expect(running.refresh()).toBe(false);
    await run("rotate");
    expect(running.refresh()).toBe(true);
    expect(running.signingKey.kid).not.toBe(first);
    expect(running.publicKeys()).toHaveLength(2);
  });
});
