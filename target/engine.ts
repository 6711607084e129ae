import type { KeyObject } from "node:crypto";
import { PublicKeyCache } from "../common/keys.js";
import type { Logger } from "../common/log.js";
import { inSchedule, nextMinuteBoundary } from "../common/schedule.js";
import { assertTimeZone } from "../common/time-zone.js";
import type { TargetConfig } from "../schemas/config.js";
import type { Challenge, EventType, LockState, TargetState } from "../schemas/messages.js";
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
import {
  challengeMessage,
  type EventFields,
  eventMessage,
  type StateHolder,
  stateMessage,
  type TargetOutbox,
} from "./events.js";
import { issuerKeyMap, verifyIssuerToken } from "./issuer-tokens.js";
import { LinkStates, parseLinkStatus } from "./link-status.js";
import { TargetMemory, usesKey } from "./memory.js";
import { type Session, SessionTable } from "./sessions.js";
import { TargetStore } from "./store.js";
import { decideUnlock } from "./unlock.js";

/** The key server's source name in its LinkStates (a table of its own, so no terminal id can clash). */
const KEYSERVER = "keyserver";

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
  /** Fleet lists older than the applied one (a rollback attempt): ignored. */
  revocations_ignored: number;
  /** Link statuses taken (key server, followed terminals) and ignored for an older epoch. */
  status_accepted: number;
  status_ignored: number;
  unlocks_applied: number;
}

/** A one-time unlock holding the target open for its duration. */
interface UnlockHold {
  readonly cmdId: string;
  readonly term: string;
  readonly timer: NodeJS.Timeout;
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
  private readonly timeZone: string;
  /** Terminal statuses, followed while the terminal holds a session; and the key server's status. */
  private readonly terminalLinks = new LinkStates();
  private readonly keyserverLink = new LinkStates();
  private readonly followed = new Set<string>();
  private readonly unlocks = new Map<string, UnlockHold>();
  private scheduleTimer: NodeJS.Timeout | undefined;

  /** Load the persisted state and build the engine; `begin()` then publishes and starts the timers. */
  static open(deps: TargetEngineDeps): TargetEngine {
    // A zone the runtime does not know would make every scheduled key fail: refuse to start instead.
    assertTimeZone(deps.config.time_zone ?? "UTC");
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
    this.timeZone = config.time_zone ?? "UTC";
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
      revocations_ignored: 0,
      status_accepted: 0,
      status_ignored: 0,
      unlocks_applied: 0,
    };
    const rotator = this.rotator;
    const sessions = this.sessions;
    const terminalLinks = this.terminalLinks;
    const keyserverLink = this.keyserverLink;
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
      timeZone: this.timeZone,
      get keyserverOffline() {
        return keyserverLink.offline(KEYSERVER);
      },
      terminalOffline: (term) => terminalLinks.offline(term),
      session: (term) => sessions.get(term),
      entry: (slot) => memory.entry(slot),
      revocation: (slot) => memory.revocation(slot),
      floor: (slot) => memory.floor(slot),
      lastSeq: (term) => memory.lastSeq(term),
      uses: (slot, gen) => memory.uses(slot, gen),
      firstUse: (slot, gen) => memory.firstUse(slot, gen),
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
    if (this.scheduleTimer) clearTimeout(this.scheduleTimer);
    this.scheduleTimer = undefined;
    for (const s of this.sessions.all()) this.event("session_ended", "stopping", s);
    this.sessions.clear();
    for (const hold of this.unlocks.values()) {
      clearTimeout(hold.timer);
      this.event("session_ended", "stopping", { term: hold.term }, { cmd_id: hold.cmdId });
    }
    this.unlocks.clear();
    this.followed.clear();
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
      this.count(decision.reason);
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

  /**
   * One payload from `fleet/revocations`: the same rules as the registry, and an acknowledgement
   * (`revocations_applied`) both when a list is applied and when the applied version arrives again
   * (the retained copy after a reconnect: the key server may have missed the first one).
   */
  handleRevocations(raw: Buffer): void {
    if (raw.length === 0) return;
    const result = verifyIssuerToken(raw, TokenType.revocations, this.parts.issuers);
    const { memory, clock } = this.parts;
    const tid = this.deps.config.tid;
    if (!result.ok) {
      this.log.warn({ reason: result.reason }, "fleet revocations refused");
      this.deps.out.event(eventMessage(tid, clock.now(), "revocations_refused", { reason: result.reason }));
      return;
    }
    const { version, revoked } = result.payload;
    if (version < memory.revocationsVersion) {
      // A rollback: never applied, and no acknowledgement the key server could take for this version.
      this.counters.revocations_ignored++;
      this.log.warn({ version, current: memory.revocationsVersion }, "older fleet revocations ignored");
      return;
    }
    if (version > memory.revocationsVersion) {
      if (!this.persist(memory.snapshot(clock.floorMs(), { revocations_version: version, revoked }))) return;
      memory.setRevocations(version, revoked);
      this.log.info({ version, revoked: revoked.length }, "fleet revocations applied");
    }
    this.deps.out.event(eventMessage(tid, clock.now(), "revocations_applied", { version }));
    this.endInvalidated();
  }

  /** `keyserver/status`: an `offline` ends every relay session; stored keys keep working. */
  handleKeyserverStatus(raw: Buffer): void {
    const status = parseLinkStatus(raw);
    if (!status) return;
    if (!this.keyserverLink.accept(KEYSERVER, status)) {
      this.counters.status_ignored++;
      this.log.debug({ epoch: status.epoch }, "older key server status ignored");
      return;
    }
    this.counters.status_accepted++;
    if (status.state !== "offline") return;
    this.log.info({ epoch: status.epoch }, "key server offline");
    for (const s of this.sessions.all()) {
      if (s.mode === "relay" && this.sessions.remove(s.term)) this.ended(s, "keyserver_offline");
    }
  }

  /** `terminals/{term}/status` of a followed terminal: an `offline` ends its session, whatever the mode. */
  handleTerminalStatus(term: string, raw: Buffer): void {
    if (!this.followed.has(term)) return; // unfollowed while the message travelled
    const status = parseLinkStatus(raw);
    if (!status) return;
    if (!this.terminalLinks.accept(term, status)) {
      this.counters.status_ignored++;
      this.log.debug({ term, epoch: status.epoch }, "older terminal status ignored");
      return;
    }
    this.counters.status_accepted++;
    if (status.state !== "offline") return;
    const s = this.sessions.remove(term);
    if (s) this.ended(s, "terminal_offline");
  }

  /** One payload from `targets/{tid}/unlock`: applied at most once, persisted before it opens. */
  handleUnlock(raw: Buffer, retain: boolean): void {
    const { memory, clock } = this.parts;
    const rotator = this.rotator;
    const decision = decideUnlock(
      raw,
      retain,
      {
        tid: this.deps.config.tid,
        currentNonce: rotator.currentNonce,
        previousNonce: rotator.previous,
        nowMs: clock.now(),
        applied: (cmdId) => memory.unlocks.has(cmdId),
        terminalOffline: (term) => this.terminalLinks.offline(term),
      },
      this.parts.issuers,
    );
    if (!decision.ok) {
      this.count(decision.reason);
      this.log.info({ reason: decision.reason, cmd_id: decision.cmdId }, "unlock refused");
      this.event("unlock_refused", decision.reason, { term: decision.term }, { cmd_id: decision.cmdId });
      return;
    }
    const { cmd_id: cmdId, term, exp, duration_ms: durationMs } = decision.command;
    // Persist before acting: after a crash the same command must still be refused as a replay.
    memory.pruneUnlocks(Math.floor(clock.now() / 1000));
    memory.unlocks.set(cmdId, exp);
    if (!this.persistNow()) {
      memory.unlocks.delete(cmdId);
      return;
    }
    this.counters.unlocks_applied++;
    const timer = setTimeout(() => this.unlockElapsed(cmdId), durationMs);
    this.unlocks.set(cmdId, { cmdId, term, timer });
    this.log.info({ cmd_id: cmdId, term, duration_ms: durationMs }, "unlock applied");
    this.event("unlock_applied", undefined, { term }, { cmd_id: cmdId });
    this.setState("available", "unlocked", { term, mode: "unlock" });
  }

  private unlockElapsed(cmdId: string): void {
    const hold = this.unlocks.get(cmdId);
    if (!hold) return;
    this.unlocks.delete(cmdId);
    this.event("session_ended", "unlock_elapsed", { term: hold.term }, { cmd_id: cmdId });
    if (this.openCount() === 0) this.setState("unavailable", "unlock_elapsed");
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
    if (f.firstUseAt !== undefined) memory.firstUses.set(key, f.firstUseAt);

    if (!f.opensSession && !floorRaised && f.firstUseAt === undefined) {
      // Seq-only advance of an open session: one write per event-loop turn is enough; a replay needs
      // the current nonce, which a restart replaces anyway.
      this.persistSoon();
      this.counters.accepted++;
      this.sessions.touch(f.term);
      return;
    }
    // Persist before acting: a use counted, a first use or a floor raised must survive a crash that follows.
    if (!this.persistNow()) {
      restore(memory.seqs, f.term, prevSeq);
      restore(memory.floors, f.slot, prevFloor);
      restore(memory.useCounts, key, prevUses);
      if (f.firstUseAt !== undefined) memory.firstUses.delete(key);
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
        usesLeft: f.usesLeft,
        schedule: f.schedule,
      };
      this.sessions.open(session);
      this.follow(f.term);
      if (session.schedule) this.armSchedule();
      this.log.info({ slot: f.slot, term: f.term, gen: f.gen, mode: f.mode }, "session opened");
      this.event("auth_established", undefined, session, { gen: f.gen, uses_left: f.usesLeft });
      this.setState("available", "frame_accepted", holderOf(session));
    } else {
      this.sessions.touch(f.term);
    }
    // DESIGN §2: a newer generation seen on a slot retires the older ones there at once.
    if (floorRaised) this.endInvalidated();
  }

  private follow(term: string): void {
    if (this.followed.has(term)) return;
    this.followed.add(term);
    this.deps.out.follow?.(term);
  }

  private unfollow(term: string): void {
    if (!this.followed.delete(term)) return;
    // Unsubscribed: the retained status comes again with the next subscription, epoch and all.
    this.terminalLinks.forget(term);
    this.deps.out.unfollow?.(term);
  }

  /** Sessions and unlocks holding the target open. */
  private openCount(): number {
    return this.sessions.size + this.unlocks.size;
  }

  /**
   * While a scheduled session is open, look again at every whole minute: windows have minute
   * resolution, so the session ends at the instant its window closes.
   */
  private armSchedule(): void {
    if (this.scheduleTimer) return;
    const now = this.parts.clock.now();
    this.scheduleTimer = setTimeout(() => {
      this.scheduleTimer = undefined;
      const at = this.parts.clock.now();
      let scheduled = false;
      for (const s of this.sessions.all()) {
        if (!s.schedule) continue;
        if (inSchedule(s.schedule, at, this.timeZone)) scheduled = true;
        else if (this.sessions.remove(s.term)) this.ended(s, "schedule_closed");
      }
      if (scheduled) this.armSchedule();
    }, nextMinuteBoundary(now) - now);
  }

  /** End every session that the registry, the fleet list or a floor no longer allows. */
  private endInvalidated(): void {
    const { memory } = this.parts;
    for (const s of this.sessions.all()) {
      const entry = memory.entry(s.slot);
      const fleet = memory.revocation(s.slot);
      let reason: StateReason | undefined;
      if (entry?.status !== "active") reason = "slot_revoked";
      else if (fleet && (fleet.below_gen === undefined || s.gen < fleet.below_gen)) reason = "revoked_fleet";
      else if (s.gen < Math.max(entry.min_gen, memory.floor(s.slot))) reason = "old_generation";
      if (reason && this.sessions.remove(s.term)) this.ended(s, reason);
    }
  }

  private ended(session: Session, reason: StateReason): void {
    this.log.info({ slot: session.slot, term: session.term, reason }, "session ended");
    this.event("session_ended", reason, session);
    if (!this.sessions.get(session.term)) this.unfollow(session.term);
    if (this.openCount() === 0) this.setState("unavailable", reason);
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

  private setState(state: LockState, reason: StateReason, holder?: StateHolder, force = false): void {
    const { clock } = this.parts;
    const changed = force || state !== this.current.state;
    const since = changed ? clock.now() : this.current.since;
    this.current = stateMessage(this.deps.config.tid, state, reason, since, holder);
    this.deps.out.state(this.current);
    if (changed) this.actuator.run({ state, reason, slot: holder?.slot, term: holder?.term });
  }

  private count(reason: RefusalReason): void {
    this.counters.refused_total++;
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1;
  }

  private event(
    type: EventType,
    reason: RefusalReason | StateReason | undefined,
    who: { slot?: string | undefined; term?: string | undefined } = {},
    extra: Pick<EventFields, "gen" | "uses_left" | "cmd_id"> = {},
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

function holderOf(s: Session): StateHolder {
  return { slot: s.slot, term: s.term, mode: s.mode, usesLeft: s.usesLeft };
}

function restore(map: Map<string, number>, key: string, previous: number | undefined): void {
  if (previous === undefined) map.delete(key);
  else map.set(key, previous);
}
