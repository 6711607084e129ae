import { describe, expect, it } from "vitest";
import { TargetClock } from "../../target/clock.js";

const T0 = Date.UTC(2030, 0, 1);

/** A clock on a wall and a monotonic time the test moves, recording every change of trust. */
function clockAt(markMs: number, wallMs: number) {
  const t = { wall: wallMs, mono: 1_000 };
  const trust: boolean[] = [];
  const clock = new TargetClock({
    markMs,
    wall: () => t.wall,
    monotonic: () => t.mono,
    onTrust: (trusted) => trust.push(trusted),
  });
  const pass = (ms: number) => {
    t.wall += ms;
    t.mono += ms;
  };
  return { t, trust, clock, pass };
}

describe("the target's clock", () => {
  it("keeps advancing by monotonic time when the wall clock is stepped back, and distrusts it", () => {
    const { t, trust, clock, pass } = clockAt(0, T0);
    pass(10_000);
    t.wall -= 120_000;
    pass(5_000);
    expect(clock.now()).toBe(T0 + 15_000);
    expect(clock.trusted()).toBe(false);
    expect(trust).toEqual([false]);
  });

  it("tolerates a wall clock up to 2 s behind, and trusts again only at or above the target's time", () => {
    const { t, trust, clock } = clockAt(0, T0);
    t.wall -= 2_000;
    expect(clock.trusted()).toBe(true);
    t.wall -= 1;
    expect(clock.trusted()).toBe(false);
    t.wall += 1_500;
    expect(clock.trusted()).toBe(false);
    t.wall = T0;
    expect(clock.trusted()).toBe(true);
    expect(trust).toEqual([false, true]);
  });

  it("takes a wall clock ahead of it", () => {
    const { t, clock } = clockAt(T0, T0);
    t.wall += 60_000;
    expect(clock.now()).toBe(T0 + 60_000);
    expect(clock.markMs()).toBe(T0 + 60_000);
  });

  it("starts at the persisted mark, untrusted, when the wall clock is behind it after a restart", () => {
    const { clock, pass } = clockAt(T0, T0 - 120_000);
    expect(clock.trusted()).toBe(false);
    pass(1_000);
    expect(clock.now()).toBe(T0 + 1_000);
  });

  it("is untrusted on a wall clock before 2024 (no real time yet)", () => {
    const { clock } = clockAt(0, 5_000);
    expect(clock.trusted()).toBe(false);
  });
});
