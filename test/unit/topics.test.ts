import { describe, expect, it } from "vitest";
import { SparekeyError } from "../../common/errors.js";
import { assertId, assertPrefix, DEFAULT_PREFIX, isId, TOPICS, Topics } from "../../schemas/topics.js";

const BAD_IDS = ["+", "#", "a/b", "lock+", "lock#", "", "x".repeat(65), "a b", "é", "$SYS"];

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SparekeyError) return err.code;
    throw err;
  }
  return "no error";
}

describe("Topics", () => {
  const topics = new Topics();

  it("builds the DESIGN §3 topics under the default prefix", () => {
    expect(DEFAULT_PREFIX).toBe("sparekey/v1");
    expect({
      challenge: topics.challenge("lock-1"),
      frames: topics.frames("lock-1"),
      state: topics.state("lock-1"),
      events: topics.events("lock-1"),
      registry: topics.registry("lock-1"),
      unlock: topics.unlock("lock-1"),
      revocations: topics.revocations(),
      terminalStatus: topics.terminalStatus("phone-1"),
      keyserverStatus: topics.keyserverStatus(),
      rpcRequest: topics.rpcRequest("phone-1", "download"),
      rpcReply: topics.rpcReply("phone-1"),
    }).toEqual({
      challenge: "sparekey/v1/targets/lock-1/challenge",
      frames: "sparekey/v1/targets/lock-1/frames",
      state: "sparekey/v1/targets/lock-1/state",
      events: "sparekey/v1/targets/lock-1/events",
      registry: "sparekey/v1/targets/lock-1/registry",
      unlock: "sparekey/v1/targets/lock-1/unlock",
      revocations: "sparekey/v1/fleet/revocations",
      terminalStatus: "sparekey/v1/terminals/phone-1/status",
      keyserverStatus: "sparekey/v1/keyserver/status",
      rpcRequest: "sparekey/v1/keyserver/rpc/phone-1/download",
      rpcReply: "sparekey/v1/terminals/phone-1/rpc",
    });
  });

  it("builds every topic by filling its TOPICS pattern", () => {
    const fill = (pattern: string) =>
      `${DEFAULT_PREFIX}/${pattern.replace("{tid}", "T").replace("{term}", "P").replace("{op}", "O")}`;
    const built: Record<keyof typeof TOPICS, string> = {
      challenge: topics.challenge("T"),
      frames: topics.frames("T"),
      state: topics.state("T"),
      events: topics.events("T"),
      registry: topics.registry("T"),
      unlock: topics.unlock("T"),
      revocations: topics.revocations(),
      terminalStatus: topics.terminalStatus("P"),
      keyserverStatus: topics.keyserverStatus(),
      rpcRequest: topics.rpcRequest("P", "O"),
      rpcReply: topics.rpcReply("P"),
    };
    for (const [name, spec] of Object.entries(TOPICS)) {
      expect(built[name as keyof typeof TOPICS], name).toBe(fill(spec.pattern));
    }
  });

  it("uses a configured prefix", () => {
    const custom = new Topics("acme/site-2/sparekey/v1");
    expect(custom.frames("lock-1")).toBe("acme/site-2/sparekey/v1/targets/lock-1/frames");
    expect(custom.revocations()).toBe("acme/site-2/sparekey/v1/fleet/revocations");
  });

  it("refuses wildcard and malformed ids before a topic is built", () => {
    for (const bad of BAD_IDS) {
      expect(
        codeOf(() => topics.frames(bad)),
        bad,
      ).toBe("invalid_id");
      expect(
        codeOf(() => topics.challenge(bad)),
        bad,
      ).toBe("invalid_id");
      expect(
        codeOf(() => topics.terminalStatus(bad)),
        bad,
      ).toBe("invalid_id");
      expect(
        codeOf(() => topics.rpcReply(bad)),
        bad,
      ).toBe("invalid_id");
      expect(
        codeOf(() => topics.rpcRequest(bad, "download")),
        bad,
      ).toBe("invalid_id");
      expect(
        codeOf(() => topics.rpcRequest("phone-1", bad)),
        bad,
      ).toBe("invalid_id");
    }
  });

  it("names which id was refused without echoing it", () => {
    expect(() => topics.rpcRequest("phone-1", "a/#")).toThrow("op must match ^[A-Za-z0-9_-]{1,64}$");
    expect(() => topics.state("+")).toThrow("tid must match ^[A-Za-z0-9_-]{1,64}$");
  });

  it("refuses prefixes that are empty, wildcarded, too deep or have empty levels", () => {
    for (const bad of ["", "/", "a/", "/a", "a//b", "a/+", "#", "a/b/c/d/e", "$SYS/x", "a b"]) {
      expect(
        codeOf(() => new Topics(bad)),
        bad,
      ).toBe("config_invalid");
      expect(
        codeOf(() => assertPrefix(bad)),
        bad,
      ).toBe("config_invalid");
    }
    for (const good of ["sparekey", "a/b/c/d", "sparekey/v1"]) expect(assertPrefix(good)).toBe(good);
  });

  it("relative() returns the levels after the prefix, or undefined outside it", () => {
    expect(topics.relative("sparekey/v1/targets/lock-1/frames")).toEqual(["targets", "lock-1", "frames"]);
    expect(topics.relative("sparekey/v1/keyserver/status")).toEqual(["keyserver", "status"]);
    expect(topics.relative("sparekey/v1")).toBeUndefined();
    expect(topics.relative("sparekey/v10/targets/lock-1/frames")).toBeUndefined();
    expect(topics.relative("other/v1/targets/lock-1/frames")).toBeUndefined();
    expect(topics.relative("$SYS/broker/uptime")).toBeUndefined();
  });
});

describe("assertId / isId", () => {
  it("accept ids of 1 to 64 characters from [A-Za-z0-9_-]", () => {
    for (const good of ["a", "lock-1", "PHONE_2", "x".repeat(64)]) {
      expect(assertId(good)).toBe(good);
      expect(isId(good)).toBe(true);
    }
  });

  it("refuse wildcards, separators, empty, 65 characters and non-strings", () => {
    for (const bad of [...BAD_IDS, 7, null, undefined, ["a"], { toString: () => "a" }]) {
      expect(isId(bad)).toBe(false);
      expect(
        codeOf(() => assertId(bad)),
        String(bad),
      ).toBe("invalid_id");
    }
  });
});

describe("TOPICS table", () => {
  it("states the QoS and retain flags of DESIGN §3", () => {
    const flags = Object.fromEntries(Object.entries(TOPICS).map(([name, s]) => [name, [s.qos, s.retain]]));
    expect(flags).toEqual({
      challenge: [0, true],
      frames: [0, false],
      state: [1, true],
      events: [1, false],
      registry: [1, true],
      unlock: [1, false],
      revocations: [1, true],
      terminalStatus: [1, true],
      keyserverStatus: [1, true],
      rpcRequest: [1, false],
      rpcReply: [1, false],
    });
  });
});
