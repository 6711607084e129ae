import { describe, expect, it } from "vitest";
import { describeReason, REASON_INFO, reasonClass } from "../../schemas/reason-classes.js";
import { REFUSAL_REASONS, STATE_REASONS } from "../../schemas/reasons.js";

describe("reason classes", () => {
  it("classify every refusal and state reason, and nothing else", () => {
    const reasons = [...new Set<string>([...REFUSAL_REASONS, ...STATE_REASONS])].sort();
    expect(Object.keys(REASON_INFO).sort()).toEqual(reasons);
    for (const info of Object.values(REASON_INFO)) expect(info.words.length).toBeGreaterThan(0);
  });

  it("stop on a revoked or foreign key and keep going on a late frame, a clock, a line or a window", () => {
    const of = (reasons: readonly (keyof typeof REASON_INFO)[]) =>
      Object.fromEntries(reasons.map((r) => [r, reasonClass(r)]));
    expect(of(["slot_revoked", "revoked_fleet", "old_generation", "uses_exhausted", "expired"])).toEqual({
      slot_revoked: "revoked",
      revoked_fleet: "revoked",
      old_generation: "revoked",
      uses_exhausted: "revoked",
      expired: "revoked",
    });
    expect(of(["locked_out", "credential_wrong_target", "unknown_slot", "bad_credential_signature"])).toEqual(
      {
        locked_out: "permanent",
        credential_wrong_target: "permanent",
        unknown_slot: "permanent",
        bad_credential_signature: "permanent",
      },
    );
    expect(
      of([
        "stale_nonce",
        "terminal_status_unknown",
        "clock_untrusted",
        "keyserver_offline",
        "outside_schedule",
        "not_yet_valid",
        "frame_timeout",
      ]),
    ).toEqual({
      stale_nonce: "transient",
      terminal_status_unknown: "transient",
      clock_untrusted: "transient",
      keyserver_offline: "transient",
      outside_schedule: "transient",
      not_yet_valid: "transient",
      frame_timeout: "transient",
    });
  });

  it("describe a reason in words with its code", () => {
    expect(describeReason("slot_revoked")).toBe("this key was revoked (slot_revoked)");
  });
});
