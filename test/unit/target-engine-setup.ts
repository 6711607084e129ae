import { silentLogger } from "../../common/log.js";
import type { TargetConfig } from "../../schemas/config.js";
import type { Challenge, TargetEvent, TargetState, Verdict } from "../../schemas/messages.js";
import type {
  CredentialPayload,
  FramePayload,
  RegistryEntry,
  RelayPayload,
  UnlockPayload,
} from "../../schemas/tokens.js";
import { TargetEngine } from "../../target/engine.js";
import {
  makeHolder,
  makeIssuer,
  mintCredential,
  mintFrame,
  mintRegistry,
  mintRelay,
  mintUnlock,
  type Overrides,
  registryEntry,
} from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

/** An engine without MQTT for fake-timer tests: records what it publishes and which terminals it follows. */

export const TID = "lock-1";
export const START_MS = Date.UTC(2030, 0, 1);
export const issuer = makeIssuer();
export const holder = makeHolder();

export interface Recorded {
  states: TargetState[];
  events: TargetEvent[];
  challenges: Challenge[];
  /** "+term" on follow, "-term" on unfollow, in order. */
  follows: string[];
  /** Verdicts with the terminal they were addressed to. */
  verdicts: { term: string; verdict: Verdict }[];
}

export interface EngineSetupOptions {
  periodMs?: number;
  timeoutPeriods?: number;
  timeZone?: string;
  slots?: RegistryEntry[];
  /** Lockout keys of the target's config (absent: the defaults). */
  lockout?: Pick<TargetConfig, "lockout_refusals" | "lockout_window_s" | "lockout_s">;
}

export function engineSetup(options: EngineSetupOptions = {}) {
  const config: TargetConfig = {
    v: 1,
    tid: TID,
    broker_url: "mqtt://127.0.0.1:9",
    secret: "x".repeat(32),
    prefix: "sparekey/v1",
    issuer_keys: [issuer.publicKey],
    period_ms: options.periodMs ?? 1000,
    timeout_periods: options.timeoutPeriods ?? 60,
    state_dir: tempDir(),
    keepalive_s: 5,
    ...(options.timeZone ? { time_zone: options.timeZone } : {}),
    ...options.lockout,
  };
  const rec: Recorded = { states: [], events: [], challenges: [], follows: [], verdicts: [] };
  let seq = 0;
  /** Open an engine on the setup's state dir (again after `close()` to model a restart). */
  const open = (): TargetEngine => {
    const engine = TargetEngine.open({
      config,
      logger: silentLogger(),
      out: {
        state: (m) => rec.states.push(m),
        event: (m) => rec.events.push(m),
        challenge: (m) => rec.challenges.push(m),
        follow: (term) => rec.follows.push(`+${term}`),
        unfollow: (term) => rec.follows.push(`-${term}`),
        verdict: (term, verdict) => rec.verdicts.push({ term, verdict }),
      },
    });
    engine.begin();
    engine.handleRegistry(
      Buffer.from(
        mintRegistry(issuer, TID, { version: 1, slots: options.slots ?? [registryEntry("slot-1")] }),
      ),
    );
    return engine;
  };
  const nextSeq = () => {
    seq += 1;
    return seq;
  };
  return {
    config,
    rec,
    open,
    /** A stored-key frame on the engine's current nonce. */
    frame(
      engine: TargetEngine,
      cred: Overrides<CredentialPayload> = {},
      overrides: Partial<FramePayload> = {},
    ): Buffer {
      const credential = mintCredential(issuer, { holder: holder.publicKeyB64, tids: [TID], ...cred });
      const payload: FramePayload = {
        v: 1,
        tid: TID,
        slot: "slot-1",
        term: cred.term ?? "term-1",
        nonce: engine.challenge().nonce,
        seq: nextSeq(),
        cred: credential,
        ...overrides,
      };
      return Buffer.from(mintFrame(holder, payload));
    },
    /** A relay frame on the engine's current nonce. */
    relay(engine: TargetEngine, overrides: Overrides<RelayPayload> = {}): Buffer {
      return Buffer.from(
        mintRelay(issuer, {
          tid: TID,
          nonce: engine.challenge().nonce,
          seq: nextSeq(),
          iat: Math.floor(Date.now() / 1000),
          ...overrides,
        }),
      );
    },
    /** An unlock command on the engine's current nonce. */
    unlock(engine: TargetEngine, overrides: Overrides<UnlockPayload> = {}): Buffer {
      const now = Math.floor(Date.now() / 1000);
      return Buffer.from(
        mintUnlock(issuer, {
          tid: TID,
          nonce: engine.challenge().nonce,
          iat: now,
          exp: now + 60,
          ...overrides,
        }),
      );
    },
    status(state: "online" | "offline", epoch: number): Buffer {
      return Buffer.from(JSON.stringify({ v: 1, state, epoch }));
    },
    /** The key server's status: a link status naming its issuer key. */
    keyserverStatus(state: "online" | "offline", epoch: number): Buffer {
      return Buffer.from(JSON.stringify({ v: 1, state, epoch, kid: issuer.key.kid }));
    },
    /**
     * Make the target hold `term` online at `epoch` the way it learns it: a first relay frame, refused
     * `terminal_status_unknown`, makes it follow the terminal; then the retained status arrives.
     */
    online(engine: TargetEngine, term = "term-1", epoch = 1): void {
      const first = Buffer.from(
        mintRelay(issuer, { tid: TID, nonce: engine.challenge().nonce, term, epoch }),
      );
      const d = engine.handleFrame(first, false, term);
      if (d.ok || d.reason !== "terminal_status_unknown") throw new Error(`${term} was known already`);
      engine.handleTerminalStatus(term, Buffer.from(JSON.stringify({ v: 1, state: "online", epoch })));
    },
  };
}

export function lastState(rec: Recorded): TargetState | undefined {
  return rec.states[rec.states.length - 1];
}

export function eventsOf(rec: Recorded, type: TargetEvent["type"], from = 0): TargetEvent[] {
  return rec.events.slice(from).filter((e) => e.type === type);
}
