import { describe, expect, it } from "vitest";
import type { CredentialPayload } from "../../schemas/tokens.js";
import { renewalDue } from "../../terminal/renew.js";
import { credentialPayload } from "../helpers/issuer.js";

const NBF = 1_800_000_000;
const WEEK = 7 * 86_400;
const cred = (o: Partial<CredentialPayload> = {}): CredentialPayload =>
  credentialPayload({ nbf: NBF, exp: NBF + WEEK, ...o });

describe("credential renewal is due", () => {
  it("once less than the fraction of the lifetime (nbf to exp) remains", () => {
    const third = WEEK / 3;
    expect(renewalDue(cred(), NBF + WEEK - third)).toBe(false);
    expect(renewalDue(cred(), NBF + WEEK - third + 1)).toBe(true);
    expect(renewalDue(cred(), NBF + WEEK + 10)).toBe(true);
    expect(renewalDue(cred(), NBF + WEEK / 2, 0.6)).toBe(true);
    expect(renewalDue(cred(), NBF + WEEK / 2, 0.4)).toBe(false);
  });

  it("never for a key without exp, nor for a use- or first-use-limited one (issued once)", () => {
    const late = NBF + WEEK - 1;
    expect(renewalDue(cred({ exp: undefined }), late)).toBe(false);
    expect(renewalDue(cred({ max_uses: 3 }), late)).toBe(false);
    expect(renewalDue(cred({ first_use_ttl_s: 3600 }), late)).toBe(false);
  });
});
