import { describe, expect, it } from "vitest";
import type { TargetStateFile } from "../../schemas/records.js";
import { emptyState, TargetMemory } from "../../target/memory.js";
import { type HeldKey, type StandingView, sessionBar } from "../../target/standing.js";
import { registryEntry } from "../helpers/issuer.js";

const NOW_MS = Date.UTC(2030, 0, 7, 12); // a Monday, 12:00 UTC

interface Setup {
  state?: Partial<TargetStateFile>;
  keyserverOffline?: boolean;
  offline?: string[];
}

function view(setup: Setup = {}): StandingView {
  const memory = new TargetMemory({
    ...emptyState("lock-1"),
    registry: [registryEntry("slot-1")],
    floors: { "slot-1": 1 },
    ...setup.state,
  });
  return {
    nowMs: NOW_MS,
    timeZone: "UTC",
    keyserverOffline: setup.keyserverOffline ?? false,
    terminalOffline: (term) => setup.offline?.includes(term) ?? false,
    terminalStatus: (term) => ({
      v: 1,
      state: setup.offline?.includes(term) ? "offline" : "online",
      epoch: 1,
    }),
    entry: (slot) => memory.entry(slot),
    revocation: (slot) => memory.revocation(slot),
    floor: (slot) => memory.floor(slot),
    lastSeq: (term) => memory.lastSeq(term),
    uses: (slot, gen) => memory.uses(slot, gen),
    firstUse: (slot, gen) => memory.firstUse(slot, gen),
  };
}

const held: HeldKey = { term: "term-1", slot: "slot-1", gen: 1, mode: "stored", expMs: undefined };

describe("the standing rule for open sessions", () => {
  const cases: [string, HeldKey, Setup, string | undefined][] = [
    ["a key nothing has changed", held, {}, undefined],
    ["a slot gone from the registry", held, { state: { registry: [] } }, "slot_revoked"],
    [
      "a suspended slot",
      held,
      { state: { registry: [registryEntry("slot-1", { status: "suspended" })] } },
      "slot_revoked",
    ],
    ["a slot the fleet list revokes", held, { state: { revoked: [{ slot: "slot-1" }] } }, "revoked_fleet"],
    [
      "a generation below the fleet's below_gen",
      held,
      { state: { revoked: [{ slot: "slot-1", below_gen: 2 }] } },
      "revoked_fleet",
    ],
    ["a generation below the slot's floor", held, { state: { floors: { "slot-1": 2 } } }, "old_generation"],
    ["a key past its exp", { ...held, expMs: NOW_MS }, {}, "expired"],
    [
      "a key outside its weekly window",
      { ...held, schedule: [{ days: [2], start: "08:00", end: "18:00" }] },
      {},
      "schedule_closed",
    ],
    [
      "a key inside its weekly window",
      { ...held, schedule: [{ days: [1], start: "08:00", end: "18:00" }] },
      {},
      undefined,
    ],
    [
      "a relay key while the key server is offline",
      { ...held, mode: "relay" },
      { keyserverOffline: true },
      "keyserver_offline",
    ],
    ["a stored key while the key server is offline", held, { keyserverOffline: true }, undefined],
    ["a key whose terminal is offline", held, { offline: ["term-1"] }, "terminal_offline"],
    [
      "a revoked and expired key of an offline terminal: the slot first",
      { ...held, expMs: NOW_MS },
      { state: { revoked: [{ slot: "slot-1" }] }, offline: ["term-1"] },
      "revoked_fleet",
    ],
  ];
  for (const [what, key, setup, reason] of cases) {
    it(`${reason === undefined ? "lets continue" : `ends with ${reason}`} ${what}`, () => {
      expect(sessionBar(key, view(setup))).toBe(reason);
    });
  }
});
