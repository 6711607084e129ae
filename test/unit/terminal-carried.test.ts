import { statSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.js";
import { TokenType } from "../../schemas/tokens.js";
import { carriedFor, carriedPath, keepCarried, readCarried } from "../../terminal/carried.js";
import { makeIssuer, mintCredential, mintRegistry, mintRevocations, rawToken } from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

const TERM = "phone-1";
const issuer = makeIssuer();
const fleet = { kind: "revocations" } as const;
const door1 = { kind: "registry", tid: "door-1" } as const;

describe("lists a terminal keeps to carry", () => {
  it("keeps a newer fleet list and registry in carried.json (0600), never an equal or older one", () => {
    const dir = tempDir();
    const v2 = mintRevocations(issuer, { version: 2 });
    expect(keepCarried(dir, TERM, fleet, v2)).toBe(true);
    expect(keepCarried(dir, TERM, fleet, mintRevocations(issuer, { version: 1 }))).toBe(false);
    expect(
      keepCarried(dir, TERM, fleet, mintRevocations(issuer, { version: 2, revoked: [{ slot: "x" }] })),
    ).toBe(false);
    const registry = mintRegistry(issuer, "door-1", { version: 4 });
    expect(keepCarried(dir, TERM, door1, registry)).toBe(true);
    expect(readCarried(dir, TERM)).toEqual({
      v: 1,
      term: TERM,
      revocations: v2,
      registries: { "door-1": registry },
    });
    expect(statSync(carriedPath(dir)).mode & 0o777).toBe(0o600);
    expect(carriedFor(dir, TERM, "door-1", silentLogger())).toEqual([registry, v2]);
    expect(carriedFor(dir, TERM, "door-2", silentLogger())).toEqual([v2]);
  });

  it("refuses what is not a list of its kind: another target's registry, a wrong typ, garbage", () => {
    const dir = tempDir();
    const payload = { v: 1, version: 3, revoked: [], iat: 1 };
    for (const [list, token] of [
      [door1, mintRegistry(issuer, "door-2", { version: 9 })],
      [door1, mintRevocations(issuer, { version: 9 })],
      [fleet, mintRegistry(issuer, "door-1", { version: 9 })],
      [fleet, mintCredential(issuer)],
      [fleet, rawToken({ alg: "none", typ: TokenType.revocations, kid: issuer.key.kid }, payload)],
      [fleet, "not.a.token"],
    ] as const) {
      expect(keepCarried(dir, TERM, list, token), token.slice(0, 20)).toBe(false);
    }
    expect(readCarried(dir, TERM)).toEqual({ v: 1, term: TERM, registries: {} });
  });

  it("replaces a damaged carried.json with one that validates, and carries nothing from it meanwhile", () => {
    const dir = tempDir();
    writeFileSync(carriedPath(dir), "{ damaged");
    expect(carriedFor(dir, TERM, "door-1", silentLogger())).toEqual([]);
    const v1 = mintRevocations(issuer, { version: 1 });
    expect(keepCarried(dir, TERM, fleet, v1)).toBe(true);
    expect(readCarried(dir, TERM)).toEqual({ v: 1, term: TERM, revocations: v1, registries: {} });
  });
});
