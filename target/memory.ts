import type { TargetStateFile } from "../schemas/records.js";
import type { RegistryEntry, RegistryIssuer, RevocationEntry } from "../schemas/tokens.js";

/** Read-only lookups the decision needs. */
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

/** The facts of an accepted frame that change the persisted state. */
export interface FrameFacts {
  readonly term: string;
  readonly slot: string;
  readonly gen: number;
  readonly seq: number;
  readonly opensSession: boolean;
  readonly firstUseAt?: number | undefined;
}

/** One change to the persisted state; `snapshot` gives its file form, `apply` commits it. */
export interface StateChange {
  readonly frame?: FrameFacts;
  readonly unlock?: { readonly cmdId: string; readonly exp: number; readonly nowS: number };
  /** A terminal locked out until `untilMs` (the target's clock); lockouts ended by `nowMs` are dropped. */
  readonly lockout?: { readonly term: string; readonly untilMs: number; readonly nowMs: number };
  /** A registry; `issuers` (when it listed them) replaces the issuer keys learned before. */
  readonly registry?: {
    readonly version: number;
    readonly slots: RegistryEntry[];
    readonly issuers?: RegistryIssuer[] | undefined;
  };
  readonly revocations?: { readonly version: number; readonly revoked: RevocationEntry[] };
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
 * and must stay data. Changed only through `apply`, after `snapshot` gave the form that was persisted.
 */
export class TargetMemory implements StateLookups {
  readonly tid: string;
  registryVersion: number;
  revocationsVersion: number;
  private registry: RegistryEntry[];
  private learned: RegistryIssuer[];
  private revokedList: RevocationEntry[];
  private entries: Map<string, RegistryEntry>;
  private revoked: Map<string, RevocationEntry>;
  private readonly floors: Map<string, number>;
  private readonly seqs: Map<string, number>;
  private readonly useCounts: Map<string, number>;
  private readonly firstUses: Map<string, number>;
  /** Applied unlock commands: cmd_id -> exp (Unix s). */
  private unlocks: Map<string, number>;
  /** Locked-out terminals: term -> Unix ms when the lockout ends. */
  private lockouts: Map<string, number>;

  constructor(file: TargetStateFile) {
    this.tid = file.tid;
    this.registryVersion = file.registry_version;
    this.revocationsVersion = file.revocations_version;
    this.registry = file.registry;
    this.learned = file.issuers ?? [];
    this.revokedList = file.revoked;
    this.entries = new Map(file.registry.map((e) => [e.slot, e]));
    this.revoked = new Map(file.revoked.map((r) => [r.slot, r]));
    this.floors = new Map(Object.entries(file.floors));
    this.seqs = new Map(Object.entries(file.seqs));
    this.useCounts = new Map(Object.entries(file.uses));
    this.firstUses = new Map(Object.entries(file.first_use ?? {}));
    this.unlocks = new Map(Object.entries(file.unlocks ?? {}));
    this.lockouts = new Map(Object.entries(file.lockouts ?? {}));
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
  /** The unlock command was applied (kept until its exp). */
  unlockApplied(cmdId: string): boolean {
    return this.unlocks.has(cmdId);
  }
  /** The terminal is locked out at `nowMs` (the target's clock). */
  lockedOut(term: string, nowMs: number): boolean {
    const until = this.lockouts.get(term);
    return until !== undefined && nowMs < until;
  }
  registryEntries(): readonly RegistryEntry[] {
    return this.registry;
  }
  /** Issuer keys learned from the latest applied registry that listed them. */
  learnedIssuers(): readonly RegistryIssuer[] {
    return this.learned;
  }

  /**
   * The file form after `change`, without applying it: the engine persists this and only then
   * commits the same change in memory (`apply`), so a failed write leaves memory as it was.
   */
  snapshot(timeFloorMs: number, change: StateChange = {}): TargetStateFile {
    const { frame, unlock, lockout } = change;
    const lockouts = lockout ? this.lockoutsAfter(lockout) : this.lockouts;
    const usesKeyOf = frame && usesKey(frame.slot, frame.gen);
    const unlocks = unlock ? this.unlocksAfter(unlock) : this.unlocks;
    const learned = change.registry?.issuers ?? this.learned;
    const firstUses =
      frame?.firstUseAt !== undefined && usesKeyOf
        ? with1(this.firstUses, usesKeyOf, frame.firstUseAt)
        : this.firstUses;
    return {
      v: 1,
      tid: this.tid,
      registry_version: change.registry?.version ?? this.registryVersion,
      registry: change.registry?.slots ?? this.registry,
      revocations_version: change.revocations?.version ?? this.revocationsVersion,
      revoked: change.revocations?.revoked ?? this.revokedList,
      floors: Object.fromEntries(
        frame && this.raisesFloor(frame) ? with1(this.floors, frame.slot, frame.gen) : this.floors,
      ),
      seqs: Object.fromEntries(frame ? with1(this.seqs, frame.term, frame.seq) : this.seqs),
      uses: Object.fromEntries(
        frame?.opensSession && usesKeyOf
          ? with1(this.useCounts, usesKeyOf, this.uses(frame.slot, frame.gen) + 1)
          : this.useCounts,
      ),
      time_floor_ms: timeFloorMs,
      // Optional members stay out of the file until used: older state files and tools read the same.
      ...(firstUses.size > 0 ? { first_use: Object.fromEntries(firstUses) } : {}),
      ...(learned.length > 0 ? { issuers: learned } : {}),
      ...(unlocks.size > 0 ? { unlocks: Object.fromEntries(unlocks) } : {}),
      ...(lockouts.size > 0 ? { lockouts: Object.fromEntries(lockouts) } : {}),
    };
  }

  /** Commit a change that `snapshot(…, change)` gave the persisted form of. */
  apply(change: StateChange): void {
    const { frame, unlock, registry, revocations, lockout } = change;
    if (registry) {
      this.registryVersion = registry.version;
      this.registry = registry.slots;
      this.entries = new Map(registry.slots.map((e) => [e.slot, e]));
      if (registry.issuers) this.learned = registry.issuers;
    }
    if (revocations) {
      this.revocationsVersion = revocations.version;
      this.revokedList = revocations.revoked;
      this.revoked = new Map(revocations.revoked.map((r) => [r.slot, r]));
    }
    if (unlock) this.unlocks = this.unlocksAfter(unlock);
    if (lockout) this.lockouts = this.lockoutsAfter(lockout);
    if (frame) {
      const key = usesKey(frame.slot, frame.gen);
      this.seqs.set(frame.term, frame.seq);
      if (this.raisesFloor(frame)) this.floors.set(frame.slot, frame.gen);
      if (frame.opensSession) this.useCounts.set(key, this.uses(frame.slot, frame.gen) + 1);
      if (frame.firstUseAt !== undefined) this.firstUses.set(key, frame.firstUseAt);
    }
  }

  /** Does the frame raise its slot's floor (a newer generation seen there)? */
  raisesFloor(frame: FrameFacts): boolean {
    return frame.gen > this.floor(frame.slot);
  }

  /** The applied commands with this one added and those past their exp forgotten (refused as expired anyway). */
  private unlocksAfter(unlock: NonNullable<StateChange["unlock"]>): Map<string, number> {
    const next = new Map([...this.unlocks].filter(([, exp]) => exp > unlock.nowS));
    return next.set(unlock.cmdId, unlock.exp);
  }

  /** The lockouts with this one set and those ended by its `nowMs` forgotten. */
  private lockoutsAfter(lockout: NonNullable<StateChange["lockout"]>): Map<string, number> {
    const next = new Map([...this.lockouts].filter(([, until]) => until > lockout.nowMs));
    return next.set(lockout.term, lockout.untilMs);
  }
}

/** A copy of `map` with one member set. */
function with1(map: ReadonlyMap<string, number>, key: string, value: number): Map<string, number> {
  return new Map(map).set(key, value);
}
