import type { TargetStateFile } from "../schemas/records.js";
import type { RegistryEntry, RevocationEntry } from "../schemas/tokens.js";

/** Read-only lookups the decision needs (DESIGN §4). */
export interface StateLookups {
  entry(slot: string): RegistryEntry | undefined;
  revocation(slot: string): RevocationEntry | undefined;
  /** Highest generation seen or required for the slot (0 when none). */
  floor(slot: string): number;
  lastSeq(term: string): number | undefined;
  uses(slot: string, gen: number): number;
  /** Unix ms of the first accepted use of `slot` at `gen`, when recorded (first-use expiry). */
  firstUse(slot: string, gen: number): number | undefined;
}

export function usesKey(slot: string, gen: number): string {
  return `${slot}:${gen}`;
}

export function emptyState(tid: string): TargetStateFile {
  return {
    v: 1,
    tid,
    registry_version: 0,
    registry: [],
    revocations_version: 0,
    revoked: [],
    floors: {},
    seqs: {},
    uses: {},
    time_floor_ms: 0,
  };
}

/**
 * The target's state in memory. Maps, not the file's plain objects: ids such as `__proto__` are valid
 * and must stay data. `snapshot()` gives the file form to persist.
 */
export class TargetMemory implements StateLookups {
  readonly tid: string;
  registryVersion: number;
  revocationsVersion: number;
  private registry: RegistryEntry[];
  private revokedList: RevocationEntry[];
  private entries: Map<string, RegistryEntry>;
  private revoked: Map<string, RevocationEntry>;
  readonly floors: Map<string, number>;
  readonly seqs: Map<string, number>;
  readonly useCounts: Map<string, number>;
  readonly firstUses: Map<string, number>;
  /** Applied unlock commands: cmd_id -> exp (Unix s). */
  readonly unlocks: Map<string, number>;

  constructor(file: TargetStateFile) {
    this.tid = file.tid;
    this.registryVersion = file.registry_version;
    this.revocationsVersion = file.revocations_version;
    this.registry = file.registry;
    this.revokedList = file.revoked;
    this.entries = new Map(file.registry.map((e) => [e.slot, e]));
    this.revoked = new Map(file.revoked.map((r) => [r.slot, r]));
    this.floors = new Map(Object.entries(file.floors));
    this.seqs = new Map(Object.entries(file.seqs));
    this.useCounts = new Map(Object.entries(file.uses));
    this.firstUses = new Map(Object.entries(file.first_use ?? {}));
    this.unlocks = new Map(Object.entries(file.unlocks ?? {}));
  }

  entry(slot: string): RegistryEntry | undefined {
    return this.entries.get(slot);
  }
  revocation(slot: string): RevocationEntry | undefined {
    return this.revoked.get(slot);
  }
  floor(slot: string): number {
    return this.floors.get(slot) ?? 0;
  }
  lastSeq(term: string): number | undefined {
    return this.seqs.get(term);
  }
  uses(slot: string, gen: number): number {
    return this.useCounts.get(usesKey(slot, gen)) ?? 0;
  }
  firstUse(slot: string, gen: number): number | undefined {
    return this.firstUses.get(usesKey(slot, gen));
  }
  /** Forget applied unlock commands whose exp has passed: a replay of one is refused as expired anyway. */
  pruneUnlocks(nowS: number): void {
    for (const [cmd, exp] of this.unlocks) if (exp <= nowS) this.unlocks.delete(cmd);
  }
  registryEntries(): readonly RegistryEntry[] {
    return this.registry;
  }

  setRegistry(version: number, slots: RegistryEntry[]): void {
    this.registryVersion = version;
    this.registry = slots;
    this.entries = new Map(slots.map((e) => [e.slot, e]));
  }

  setRevocations(version: number, revoked: RevocationEntry[]): void {
    this.revocationsVersion = version;
    this.revokedList = revoked;
    this.revoked = new Map(revoked.map((r) => [r.slot, r]));
  }

  /** The file form; `overrides` lets a caller persist a change before applying it in memory. */
  snapshot(timeFloorMs: number, overrides: Partial<TargetStateFile> = {}): TargetStateFile {
    return {
      v: 1,
      tid: this.tid,
      registry_version: this.registryVersion,
      registry: this.registry,
      revocations_version: this.revocationsVersion,
      revoked: this.revokedList,
      floors: Object.fromEntries(this.floors),
      seqs: Object.fromEntries(this.seqs),
      uses: Object.fromEntries(this.useCounts),
      time_floor_ms: timeFloorMs,
      // Optional members stay out of the file until used: older state files and tools read the same.
      ...(this.firstUses.size > 0 ? { first_use: Object.fromEntries(this.firstUses) } : {}),
      ...(this.unlocks.size > 0 ? { unlocks: Object.fromEntries(this.unlocks) } : {}),
      ...overrides,
    };
  }
}
