import { describe, expect, it } from "vitest";
import { assertLifetime, DEFAULT_CREDENTIAL_LIFETIME_S, withLifetime } from "../../keyserver/credentials.js";

const NOW = 1_800_000_000;
const WEEK = 7 * 24 * 3600;

describe("credentials that age", () => {
  it("gives a credential of an unlimited grant an exp one lifetime after it starts (default a week)", () => {
    expect(DEFAULT_CREDENTIAL_LIFETIME_S).toBe(WEEK);
    expect(withLifetime({ nbf: NOW }, DEFAULT_CREDENTIAL_LIFETIME_S)).toEqual({ nbf: NOW, exp: NOW + WEEK });
  });

  it("keeps a grant's exp when it comes first, and cuts a later one to the lifetime", () => {
    expect(withLifetime({ nbf: NOW, exp: NOW + 3600, max_uses: 2 }, WEEK)).toEqual({
      nbf: NOW,
      exp: NOW + 3600,
      max_uses: 2,
    });
    expect(withLifetime({ nbf: NOW, exp: NOW + 30 * WEEK }, WEEK)).toEqual({ nbf: NOW, exp: NOW + WEEK });
  });

  it("counts the lifetime from a grant's future start, so a key fetched early is not born expired", () => {
    const start = NOW + 10 * 24 * 3600;
    expect(withLifetime({ nbf: start }, WEEK)).toEqual({ nbf: start, exp: start + WEEK });
  });

  it("refuses a lifetime that is not a positive whole number of seconds", () => {
    for (const bad of [0, -1, 1.5, Number.NaN])
      expect(() => assertLifetime(bad)).toThrow(expect.objectContaining({ code: "config_invalid" }));
    expect(assertLifetime(60)).toBe(60);
  });
});
