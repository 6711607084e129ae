import type { KeyObject } from "node:crypto";
import { PublicKeyCache } from "../common/keys.js";
import type { Logger } from "../common/log.js";
import type { TargetConfig } from "../schemas/config.js";
import type { Challenge, LockState, TargetState } from "../schemas/messages.js";
import type { RefusalReason, StateReason } from "../schemas/reasons.js";
import { TokenType } from "../schemas/tokens.js";
import { Actuator } from "./actuator.js";
import { ChallengeRotator } from "./challenge.js";
import {
  type AcceptedFrame,
  type Decision,
  type DecisionView,
  decideFrame,
  VerifiedCredentials,
} from "./checks.js";
import { TargetClock } from "./clock.js";
import { challengeMessage, eventMessage, stateMessage, type TargetOutbox } from "./events.js";
import { issuerKeyMap, verifyIssuerToken } from "./issuer-tokens.js";
import { TargetMemory, usesKey } from "./memory.js";
import { type Session, SessionTable } from "./sessions.js";
import { TargetStore } from "./store.js";

/** The time floor is persisted at least this often, so a restart cannot set the clock back far. */
const TIME_FLOOR_PERSIST_MS = 60_000;

export interface TargetEngineDeps {
  config: TargetConfig;
  logger: Logger;
  /** Wall clock (Unix ms); Date.now by default. */
  now?: () => number;
  out: TargetOutbox;
}

export interface TargetStats {
  accepted: number;
  refused_total: number;
  refused: Partial<Record<RefusalReason, number>>;
  sessions: number;
  registry_version: number;
  revocations_version: number;
  persist_failures: number;
}

interface Parts {
  store: TargetStore;
  memory: TargetMemory;
  clock: TargetClock;
  issuers: Map<string, KeyObject>;
}

/**
 * The lock without MQTT: decision, sessions, persistence, challenge and state machine. The Target
 * component feeds it from MQTT; tests and benchmarks can feed it directly.
 */
export class TargetEngine {
  private readonly log: Logger;
  private readonly rotator: ChallengeRotator;
  private readonly sessions: SessionTable;
  private readonly actuator: Actuator;
  private readonly holders = new PublicKeyCache();
  private readonly credentials = new VerifiedCredentials();
  private readonly view: DecisionView;
  private current: TargetState;
  private tick: NodeJS.Timeout | undefined;
  private pendingWrite: NodeJS.Immediate | undefined;
  private lastPersistMs = 0;
  private readonly counters: TargetStats;

  /** Load the persisted state and build the engine; `begin()` then publishes and starts the timers. */
  static open(deps: TargetEngineDeps): TargetEngine {
    const store = new TargetStore(deps.config.state_dir, deps.config.tid);
    const file = store.load();
    const clock = new TargetClock(file.time_floor_ms, deps.now ?? Date.now);
    return new TargetEngine(deps, {
      store,
      memory: new TargetMemory(file),
      clock,
      issuers: issuerKeyMap(deps.config.issuer_keys),
    });
  }

  private constructor(
    private readonly deps: TargetEngineDeps,
    private readonly parts: Parts,
  ) {
    const { config } = deps;
    const { clock, memory } = parts;
    this.log = deps.logger.child({ component: "target", tid: config.tid });
    this.rotator = new ChallengeRotator(() => clock.now());
    this.sessions = new SessionTable({
      timeoutMs: config.timeout_periods * config.period_ms,
      now: () => clock.now(),
      onTimerEnd: (session, reason) => this.ended(session, reason),
    });
    this.actuator = new Actuator({ argv: config.actuator, tid: config.tid, logger: this.log });
    this.current = stateMessage(config.tid, "unavailable", "started", clock.now());
    this.counters = {
      accepted: 0,
      refused_total: 0,
      refused: {},
      sessions: 0,
      registry_version: memory.registryVersion,
      revocations_version: memory.revocationsVersion,
      persist_failures: 0,
    };
    const rotator = this.rotator;
    const sessions = this.sessions;
    this.view = {
      tid: config.tid,
      get currentNonce() {
        return rotator.currentNonce;
      },
      get previousNonce() {
        return rotator.previous;
      },
      get nowMs() {
        return clock.now();
      },
      get clockTrusted() {
        return clock.trusted();
      },
      session: (term) => sessions.get(term),
      entry: (slot) => memory.entry(slot),
      revocation: (slot) => memory.revocation(slot),
      floor: (slot) => memory.floor(slot),
      lastSeq: (term) => memory.lastSeq(term),
      uses: (slot, gen) => memory.uses(slot, gen),
    };
  }

  /** Publish `unavailable/started` and the first challenge; rotate every period from now on. */
  begin(): void {
    // Drive the actuator at start too: the lock must not keep whatever state it had before a crash.
    this.setState("unavailable", "started", undefined, true);
    this.deps.out.challenge(this.challenge());
    this.tick = setInterval(() => this.onTick(), this.deps.config.period_ms);
  }

  /** Publish `unavailable/stopping`, stop the timers and write what is pending. */
  close(): void {
    if (this.tick) clearInterval(this.tick);
    this.tick = undefined;
    for (const s of this.sessions.all()) this.event("session_ended", "stopping", s);
    this.sessions.clear();
    this.setState("unavailable", "stopping");
    this.flush();
  }

  state(): TargetState {
    return this.current;
  }

  challenge(): Challenge {
    return challengeMessage(
      this.deps.config.tid,
      this.rotator.currentNonce,
      this.deps.config.period_ms,
      this.rotator.ts,
    );
  }

  stats(): TargetStats {
    return {
      ...this.counters,
      refused: { ...this.counters.refused },
      sessions: this.sessions.size,
      registry_version: this.parts.memory.registryVersion,
      revocations_version: this.parts.memory.revocationsVersion,
    };
  }

  openSessions(): Session[] {
    return this.sessions.all();
  }

  /** Resolves when every queued actuator run has finished. */
  actuatorIdle(): Promise<void> {
    return this.actuator.idle();
  }

  /** One payload from `targets/{tid}/frames`. A refusal is an event, never a throw. */
  handleFrame(raw: Buffer, retain: boolean): Decision {
    const decision = decideFrame(raw, retain, this.view, {
      issuers: this.parts.issuers,
      holders: this.holders,
      credentials: this.credentials,
    });
    if (!decision.ok) {
      this.counters.refused_total++;
      this.counters.refused[decision.reason] = (this.counters.refused[decision.reason] ?? 0) + 1;
      this.log.debug({ reason: decision.reason, slot: decision.slot, term: decision.term }, "frame refused");
      this.event("auth_refused", decision.reason, { slot: decision.slot, term: decision.term });
      return decision;
    }
    this.accept(decision.frame);
    return decision;
  }

  /** One payload from `targets/{tid}/registry`: applied only when newer, persisted before use. */
  handleRegistry(raw: Buffer): void {
    if (raw.length === 0) return; // a cleared retained message
    const result = verifyIssuerToken(raw, TokenType.registry, this.parts.issuers);
    const tid = this.deps.config.tid;
    if (!result.ok || result.payload.tid !== tid) {
      const reason = result.ok ? "wrong_target" : result.reason;
      this.log.warn({ reason }, "registry refused");
      this.event("registry_refused", reason);
      return;
    }
    const { memory, clock } = this.parts;
    const { version, slots } = result.payload;
    if (version <= memory.registryVersion) {
      // Equal is the retained copy coming back on reconnect; older would be a rollback.
      this.log.debug({ version, current: memory.registryVersion }, "registry not newer: ignored");
      return;
    }
    if (!this.persist(memory.snapshot(clock.floorMs(), { registry_version: version, registry: slots })))
      return;
    memory.setRegistry(version, slots);
    this.log.info({ version, slots: slots.length }, "registry applied");
    this.deps.out.event(eventMessage(tid, clock.now(), "registry_applied", { version }));
    this.endInvalidated();
  }

  /** One payload from `fleet/revocations`: the same rules as the registry. */
  handleRevocations(raw: Buffer): void {
    if (raw.length === 0) return;
    const result = verifyIssuerToken(raw, TokenType.revocations, this.parts.issuers);
    if (!result.ok) {
      this.log.warn({ reason: result.reason }, "fleet revocations refused");
      return;
    }
    const { memory, clock } = this.parts;
    const { version, revoked } = result.payload;
    if (version <= memory.revocationsVersion) return;
    if (!this.persist(memory.snapshot(clock.floorMs(), { revocations_version: version, revoked }))) return;
    memory.setRevocations(version, revoked);
    this.log.info({ version, revoked: revoked.length }, "fleet revocations applied");
    this.endInvalidated();
  }

  private accept(f: AcceptedFrame): void {
    const { memory } = this.parts;
    const prevSeq = memory.seqs.get(f.term);
    const prevFloor = memory.floors.get(f.slot);
    const key = usesKey(f.slot, f.gen);
    const prevUses = memory.useCounts.get(key);
    memory.seqs.set(f.term, f.seq);
    const floorRaised = f.gen > (prevFloor ?? 0);
    if (floorRaised) memory.floors.set(f.slot, f.gen);
    if (f.opensSession) memory.useCounts.set(key, (prevUses ?? 0) + 1);

    if (!f.opensSession && !floorRaised) {
      // Seq-only advance of an open session: one write per event-loop turn is enough; a replay needs
      // the current nonce, which a restart replaces anyway.
      this.persistSoon();
      this.counters.accepted++;
      this.sessions.touch(f.term);
      return;
    }
    // Persist before acting: a use counted or a floor raised must survive a crash that follows.
    if (!this.persistNow()) {
      restore(memory.seqs, f.term, prevSeq);
      restore(memory.floors, f.slot, prevFloor);
      restore(memory.useCounts, key, prevUses);
      return;
    }
    this.counters.accepted++;
    if (f.opensSession) {
      const session: Session = {
        term: f.term,
        slot: f.slot,
        gen: f.gen,
        mode: f.mode,
        typ: f.typ,
        openedAt: this.parts.clock.now(),
        expMs: f.exp === undefined ? undefined : f.exp * 1000,
      };
      this.sessions.open(session);
      this.log.info({ slot: f.slot, term: f.term, gen: f.gen }, "session opened");
      this.event("auth_established", undefined, session, { gen: f.gen, uses_left: f.usesLeft });
      this.setState("available", "frame_accepted", session);
    } else {
      this.sessions.touch(f.term);
    }
    // DESIGN §2: a newer generation seen on a slot retires the older ones there at once.
    if (floorRaised) this.endInvalidated();
  }

  /** End every session that the registry, the fleet list or a floor no longer allows. */
  private endInvalidated(): void {
    const { memory } = this.parts;
    for (const s of this.sessions.all()) {
      const entry = memory.entry(s.slot);
      const fleet = memory.revocation(s.slot);
      let reason: StateReason | undefined;
      if (entry?.status !== "active" || (fleet && fleet.below_gen === undefined)) {
        reason = "slot_revoked";
      } else if (s.gen < Math.max(entry.min_gen, memory.floor(s.slot), fleet?.below_gen ?? 0)) {
        reason = "old_generation";
      }
      if (reason && this.sessions.remove(s.term)) this.ended(s, reason);
    }
  }

  private ended(session: Session, reason: StateReason): void {
    this.log.info({ slot: session.slot, term: session.term, reason }, "session ended");
    this.event("session_ended", reason, session);
    if (this.sessions.size === 0) this.setState("unavailable", reason);
  }

  private onTick(): void {
    const { clock } = this.parts;
    this.rotator.rotate();
    this.deps.out.challenge(this.challenge());
    for (const s of this.sessions.expired(clock.now())) {
      if (this.sessions.remove(s.term)) this.ended(s, "expired");
    }
    if (clock.now() - this.lastPersistMs >= TIME_FLOOR_PERSIST_MS) this.persistSoon();
  }

  private setState(state: LockState, reason: StateReason, session?: Session, force = false): void {
    const { clock } = this.parts;
    const changed = force || state !== this.current.state;
    const since = changed ? clock.now() : this.current.since;
    const where = session ? { slot: session.slot, term: session.term } : undefined;
    this.current = stateMessage(this.deps.config.tid, state, reason, since, where);
    this.deps.out.state(this.current);
    if (changed) this.actuator.run({ state, reason, slot: where?.slot, term: where?.term });
  }

  private event(
    type: "auth_established" | "auth_refused" | "session_ended" | "registry_refused",
    reason: RefusalReason | StateReason | undefined,
    who: { slot?: string | undefined; term?: string | undefined } = {},
    extra: { gen?: number | undefined; uses_left?: number | undefined } = {},
  ): void {
    this.deps.out.event(
      eventMessage(this.deps.config.tid, this.parts.clock.now(), type, {
        reason,
        slot: who.slot,
        term: who.term,
        ...extra,
      }),
    );
  }

  private persistSoon(): void {
    if (this.pendingWrite) return;
    this.pendingWrite = setImmediate(() => {
      this.pendingWrite = undefined;
      this.persistNow();
    });
  }

  private flush(): void {
    if (!this.pendingWrite) return;
    clearImmediate(this.pendingWrite);
    this.pendingWrite = undefined;
    this.persistNow();
  }

  private persistNow(): boolean {
    const { memory, clock } = this.parts;
    return this.persist(memory.snapshot(clock.floorMs()));
  }

  private persist(file: ReturnType<TargetMemory["snapshot"]>): boolean {
    try {
      this.parts.store.save(file);
      this.lastPersistMs = this.parts.clock.now();
      return true;
    } catch (err) {
      this.counters.persist_failures++;
      this.log.error({ err, path: this.parts.store.path }, "cannot persist target state");
      return false;
    }
  }
}

function restore(map: Map<string, number>, key: string, previous: number | undefined): void {
  if (previous === undefined) map.delete(key);
  else map.set(key, previous);
}
