import { describe, expect, it, onTestFinished } from "vitest";
import type { KeyStore } from "../../keyserver/store/store.js";
import type { TargetEvent } from "../../schemas/messages.js";
import type { StoreFactory } from "./store.contract.js";

const NOW_MS = 1_700_000_000_000;

/** Dashboard accounts and the access log, against every store implementation. */
export function operatorsContract(name: string, factory: StoreFactory): void {
  async function seeded(): Promise<KeyStore> {
    const store = await (await factory()).open({ now: () => NOW_MS });
    onTestFinished(() => store.close());
    await store.addUser({ id: "alice", passwordHash: "scrypt$not-checked" }, "admin");
    await store.addTerminal({ serial: "p1", user: "alice" }, "admin");
    await store.addTarget({ tid: "door-1", secretHash: "sha256$not-checked" }, "admin");
    await store.addTarget({ tid: "door-2", secretHash: "sha256$not-checked" }, "admin");
    return store;
  }

  describe(`${name} store: dashboards`, () => {
    it("stores a limited and an all-targets dashboard, audited, and hands their credentials back", async () => {
      const store = await seeded();
      await store.addDashboard(
        { id: "wall", passwordHash: "scrypt$w", tids: ["door-2", "door-1", "door-2"] },
        "admin",
      );
      await store.addDashboard({ id: "ops", passwordHash: "scrypt$o", tids: "all" }, "admin");
      expect(await store.dashboardCredentials("wall")).toEqual({
        passwordHash: "scrypt$w",
        tids: ["door-1", "door-2"],
      });
      expect(await store.dashboardCredentials("ops")).toEqual({ passwordHash: "scrypt$o", tids: "all" });
      expect(await store.dashboardCredentials("nobody")).toBeUndefined();
      expect(await store.listDashboards()).toEqual([
        { id: "ops", created: NOW_MS / 1000, tids: "all" },
        { id: "wall", created: NOW_MS / 1000, tids: ["door-1", "door-2"] },
      ]);
      const audit = (await store.listAudit(10)).filter((r) => r.op === "dashboard.add");
      expect(audit.map((r) => [r.subject, r.outcome])).toEqual([
        ["wall", "ok"],
        ["ops", "ok"],
      ]);
    });

    it("refuses an unknown target, an empty list and a name a user or dashboard holds", async () => {
      const store = await seeded();
      await expect(
        store.addDashboard({ id: "wall", passwordHash: "h", tids: ["door-9"] }, "admin"),
      ).rejects.toMatchObject({ code: "not_found" });
      await expect(
        store.addDashboard({ id: "wall", passwordHash: "h", tids: [] }, "admin"),
      ).rejects.toMatchObject({
        code: "bad_request",
      });
      await expect(
        store.addDashboard({ id: "alice", passwordHash: "h", tids: "all" }, "admin"),
      ).rejects.toMatchObject({ code: "already_exists" });
      await store.addDashboard({ id: "wall", passwordHash: "h", tids: "all" }, "admin");
      await expect(store.addUser({ id: "wall", passwordHash: "h" }, "admin")).rejects.toMatchObject({
        code: "already_exists",
      });
      expect(await store.dashboardCredentials("wall")).toEqual({ passwordHash: "h", tids: "all" });
      const refused = (await store.listAudit(10)).filter(
        (r) => r.op === "dashboard.add" && r.outcome !== "ok",
      );
      expect(refused.map((r) => r.outcome)).toEqual(["not_found", "already_exists"]);
    });
  });

  describe(`${name} store: access log`, () => {
    const event = (over: Partial<TargetEvent>): TargetEvent => ({
      v: 1,
      tid: "door-1",
      ts: NOW_MS - 5,
      type: "auth_established",
      ...over,
    });

    it("records events with the user behind the terminal, counts included, and filters them", async () => {
      const store = await seeded();
      await store.appendAccessLog([
        { received: NOW_MS, event: event({ term: "p1", slot: "s1" }) },
        {
          received: NOW_MS + 1,
          event: event({ type: "auth_refused", term: "p1", reason: "bad_frame_signature", count: 7 }),
        },
        {
          received: NOW_MS + 2,
          event: event({ tid: "door-2", type: "auth_refused", term: "stranger", count: 2 }),
        },
        {
          received: NOW_MS + 3,
          event: event({ tid: "door-2", type: "clock_alarm", reason: "clock_untrusted" }),
        },
      ]);
      const all = await store.listAccessLog({ limit: 10 });
      expect(all.map((r) => [r.tid, r.type, r.term, r.user, r.reason, r.count])).toEqual([
        ["door-1", "auth_established", "p1", "alice", undefined, undefined],
        ["door-1", "auth_refused", "p1", "alice", "bad_frame_signature", 7],
        ["door-2", "auth_refused", "stranger", undefined, undefined, 2],
        ["door-2", "clock_alarm", undefined, undefined, "clock_untrusted", undefined],
      ]);
      expect(all[1]?.event).toEqual(
        event({ type: "auth_refused", term: "p1", reason: "bad_frame_signature", count: 7 }),
      );
      expect(all[1]?.received).toBe(NOW_MS + 1);
      expect((await store.listAccessLog({ tid: "door-2", limit: 10 })).map((r) => r.type)).toEqual([
        "auth_refused",
        "clock_alarm",
      ]);
      expect((await store.listAccessLog({ user: "alice", limit: 10 })).length).toBe(2);
      expect((await store.listAccessLog({ since: NOW_MS + 2, limit: 10 })).map((r) => r.tid)).toEqual([
        "door-2",
        "door-2",
      ]);
      // The newest N, oldest first; and following after a seq gives the next rows in order.
      const newest = await store.listAccessLog({ limit: 2 });
      expect(newest.map((r) => r.seq)).toEqual(all.slice(2).map((r) => r.seq));
      const after = await store.listAccessLog({ afterSeq: all[0]?.seq ?? 0, limit: 2 });
      expect(after.map((r) => r.seq)).toEqual(all.slice(1, 3).map((r) => r.seq));
    });

    it("prunes rows received before a time, and only those", async () => {
      const store = await seeded();
      await store.appendAccessLog([
        { received: NOW_MS - 1000, event: event({}) },
        { received: NOW_MS, event: event({ type: "session_ended" }) },
      ]);
      expect(await store.pruneAccessLog(NOW_MS)).toBe(1);
      expect((await store.listAccessLog({ limit: 10 })).map((r) => r.type)).toEqual(["session_ended"]);
      expect(await store.pruneAccessLog(NOW_MS)).toBe(0);
    });
  });
}
