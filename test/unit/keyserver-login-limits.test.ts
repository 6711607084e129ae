import { describe, expect, it } from "vitest";
import { LoginLimits, sourceKey } from "../../keyserver/login-limits.js";

describe("sourceKey", () => {
  it.each([
    ["192.0.2.7", "192.0.2.7"],
    ["::ffff:192.0.2.7", "192.0.2.7"],
    ["2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::1", "2001:db8:1:2::/64"],
    ["2001:0db8::1", "2001:db8:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    [undefined, "unknown"],
    ["", "unknown"],
    ["not an address", "unknown"],
  ])("keys %s as %s", (address, key) => {
    expect(sourceKey(address)).toBe(key);
  });
});

describe("LoginLimits", () => {
  it("forgets an address that has not failed for forgetMs", () => {
    let now = 0;
    const limits = new LoginLimits({ perAddressFree: 2, perIdFree: 10, forgetMs: 10_000, now: () => now });
    limits.fail("192.0.2.1", ["c:p1"]);
    limits.fail("192.0.2.1", ["c:p1"]);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p1"])).toBe(1_000);
    now += 10_000;
    limits.fail("192.0.2.1", ["c:p1"]);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p1"])).toBe(0);
  });

  it("caps the back-off at maxDelayMs", () => {
    const limits = new LoginLimits({ perIdFree: 1, baseDelayMs: 1_000, maxDelayMs: 5_000, now: () => 0 });
    for (let i = 0; i < 80; i++) limits.fail("192.0.2.1", ["c:p1"]);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p1"])).toBe(5_000);
  });

  it("a success clears the address's pairs but not its own count", () => {
    const limits = new LoginLimits({ perAddressFree: 3, perIdFree: 2, now: () => 0 });
    limits.fail("192.0.2.1", ["c:p1"]);
    limits.fail("192.0.2.1", ["c:p1"]);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p1"])).toBe(1_000);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p2"])).toBe(0);
    limits.succeed("192.0.2.1", ["c:p1"]);
    limits.fail("192.0.2.1", ["c:p2"]);
    expect(limits.retryAfterMs("192.0.2.1", ["c:p3"])).toBe(1_000);
  });
});
