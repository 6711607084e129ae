import { describe, expect, it } from "vitest";
import type { CredentialPayload } from "../../schemas/tokens.js";
import { describeCredential, formatDuration, formatInstant } from "../../terminal/credential-info.js";

const base: CredentialPayload = {
  v: 1,
  slot: "guard",
  gen: 1,
  tids: ["lock-1"],
  mode: "stored",
  term: "phone-1",
  nbf: Date.parse("2030-03-18T17:00:00Z") / 1000,
  iat: 0,
  jti: "jti_0123456789abcdef",
};

describe("credential times and limits", () => {
  it("shows an instant in the named zone with its offset, across a DST change", () => {
    expect(formatInstant(Date.parse("2030-01-15T12:00:00Z") / 1000, "Europe/Berlin")).toBe(
      "2030-01-15 13:00:00 UTC+01:00",
    );
    expect(formatInstant(Date.parse("2030-07-15T12:00:00Z") / 1000, "Europe/Berlin")).toBe(
      "2030-07-15 14:00:00 UTC+02:00",
    );
    expect(formatInstant(0, "UTC")).toBe("1970-01-01 00:00:00 UTC+00:00");
  });

  it("names durations in the largest whole unit", () => {
    expect([formatDuration(61), formatDuration(5400), formatDuration(7200), formatDuration(172_800)]).toEqual(
      ["61 s", "90 min", "2 h", "2 d"],
    );
  });

  it("lists validity, uses, schedule and first-use expiry, and the zone used", () => {
    const lines = describeCredential(
      {
        ...base,
        exp: Date.parse("2030-03-18T18:00:00Z") / 1000,
        max_uses: 2,
        schedule: [
          { days: [1, 2, 3, 4, 5], start: "09:00", end: "17:00" },
          { days: [6, 7], start: "22:00", end: "06:00" },
          { days: [1, 3], start: "07:00", end: "08:00" },
        ],
        first_use_ttl_s: 3600,
      },
      "Europe/Berlin",
    );
    expect(lines).toEqual([
      "valid from  2030-03-18 18:00:00 UTC+01:00",
      "expires     2030-03-18 19:00:00 UTC+01:00",
      "uses        at most 2",
      "schedule    Mon-Fri 09:00-17:00; Sat,Sun 22:00-06:00 (ends next day); Mon,Wed 07:00-08:00 (target's local time)",
      "first use   expires 1 h after the first use",
      "times in    Europe/Berlin",
    ]);
  });

  it("says a key without limits never expires", () => {
    expect(describeCredential(base, "UTC")).toEqual([
      "valid from  2030-03-18 17:00:00 UTC+00:00",
      "expires     never",
      "times in    UTC",
    ]);
  });
});
