import { describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.js";
import { RpcQuota } from "../../keyserver/rpc-quota.js";
import type { RpcReply } from "../../schemas/rpc.js";

const ok = (id: string): RpcReply => ({ v: 1, id, ok: true, result: {} });
const limited = (id: string): RpcReply => ({
  v: 1,
  id,
  ok: false,
  error: { code: "rate_limited", message: "too many requests, retry later" },
});

describe("RpcQuota", () => {
  it("answers rate_limited over the burst, without running the op, and refills at the rate", async () => {
    let now = 0;
    let ran = 0;
    const quota = new RpcQuota({
      logger: silentLogger(),
      options: { ratePerS: 2, burst: 3, now: () => now },
    });
    const call = (id: string) =>
      quota.guard("p1", id, async () => {
        ran++;
        return ok(id);
      });
    expect(await Promise.all(["a", "b", "c", "d"].map(call))).toEqual([
      ok("a"),
      ok("b"),
      ok("c"),
      limited("d"),
    ]);
    expect(ran).toBe(3);
    now += 499;
    expect(await call("e")).toEqual(limited("e"));
    now += 1;
    expect(await call("f")).toEqual(ok("f"));
    expect(quota.refusedPending("p1")).toBe(1);
  });

  it("keeps each caller's quota its own", async () => {
    const quota = new RpcQuota({ logger: silentLogger(), options: { burst: 1, now: () => 0 } });
    const call = (term: string, id: string) => quota.guard(term, id, async () => ok(id));
    expect(await call("p1", "a")).toEqual(ok("a"));
    expect(await call("p1", "b")).toEqual(limited("b"));
    expect(await call("p2", "c")).toEqual(ok("c"));
  });

  it("refuses a caller's request while maxInFlight of its ops still run, and admits again after", async () => {
    const quota = new RpcQuota({ logger: silentLogger(), options: { maxInFlight: 2, now: () => 0 } });
    const gates: Array<() => void> = [];
    const slow = (id: string) =>
      quota.guard("p1", id, () => new Promise<RpcReply>((resolve) => gates.push(() => resolve(ok(id)))));
    const first = [slow("a"), slow("b")];
    expect(await slow("c")).toEqual(limited("c"));
    for (const open of gates) open();
    expect(await Promise.all(first)).toEqual([ok("a"), ok("b")]);
    const d = slow("d");
    gates.at(-1)?.();
    expect(await d).toEqual(ok("d"));
  });

  it("releases the in-flight slot when the op throws", async () => {
    const quota = new RpcQuota({ logger: silentLogger(), options: { maxInFlight: 1, now: () => 0 } });
    await expect(quota.guard("p1", "a", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await quota.guard("p1", "b", async () => ok("b"))).toEqual(ok("b"));
  });
});
