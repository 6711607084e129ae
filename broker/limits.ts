import { SparekeyError } from "../common/errors.js";
import { DEEPEST_TOPIC_LEVELS } from "../schemas/topics.js";
import type { Role } from "./principal.js";

/**
 * What one client may ask of the broker per second. Counted are the packets that make the broker
 * work (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ); acknowledgements of what the broker sent are free.
 */
export interface Budget {
  /** Sustained packets per second. */
  readonly ratePerS: number;
  /** Packets a client may send at once above the sustained rate. */
  readonly burst: number;
  /**
   * The hard ceiling: the longest a client may stay over its budget without a break (every packet it
   * sends has to wait for the one before) before it is dropped. `null`: never dropped, only slowed.
   */
  readonly holdMaxMs: number | null;
}

/**
 * Budgets per role, the one place for these numbers (docs/SECURITY.md: a legitimate burst is slowed, never
 * dropped). A terminal sends a frame every few hundred ms and a few RPCs, far below 50/s. A target
 * publishes its challenge and state, and per terminal at most one refusal event and one verdict a
 * period (coalesced): 400/s leaves room for 200 terminals hammering one lock at once. Only a runaway
 * or hostile client is slowed, and only one that stays over for 10 s without a break is dropped. The key server publishes a registry per target at every (re)connection and a relay
 * frame per relaying terminal: it is never dropped, and its rate is high enough that 5,000
 * registries at start pass in one burst.
 */
export const DEFAULT_BUDGETS: Readonly<Record<Role, Budget>> = Object.freeze({
  terminal: Object.freeze({ ratePerS: 50, burst: 100, holdMaxMs: 10_000 }),
  target: Object.freeze({ ratePerS: 400, burst: 800, holdMaxMs: 10_000 }),
  keyserver: Object.freeze({ ratePerS: 5_000, burst: 20_000, holdMaxMs: null }),
  // Publishes nothing: a dashboard only subscribes (one filter per watched target) and pings.
  dashboard: Object.freeze({ ratePerS: 50, burst: 200, holdMaxMs: 10_000 }),
  // An operator sends a command now and then; the key server's per-operator quota refuses the rest.
  admin: Object.freeze({ ratePerS: 50, burst: 100, holdMaxMs: 10_000 }),
});

/** What the broker bounds that aedes does not, or bounds too loosely by default. */
export interface BrokerLimits {
  /** Largest MQTT packet (fixed header included) accepted; larger ones drop the connection unread. */
  readonly maxPacketBytes: number;
  /** A TCP connection that has not sent CONNECT by then is closed. */
  readonly connectTimeoutMs: number;
  /**
   * Largest keepalive a client may ask for (larger: CONNACK 2, as Mosquitto's `max_keepalive`). A
   * client asking for 0 (no keepalive) gets this value as its idle limit, so every dead peer is noticed.
   */
  readonly keepaliveMaxS: number;
  /** Deepest topic or filter (levels, prefix included); checked before the ACL splits a topic. */
  readonly maxTopicLevels: number;
  /** Per-role packet budgets. */
  readonly budgets: Readonly<Record<Role, Budget>>;
  /**
   * Distinct filters a terminal may hold at once (it needs a handful: one challenge, one state, its
   * rpc, the key server's status); without a cap one login could grow the broker's memory at will.
   */
  readonly maxTerminalSubscriptions: number;
  /** The same for a target, which follows the status of every terminal holding a session. */
  readonly maxTargetSubscriptions: number;
}

export const DEFAULT_LIMITS: BrokerLimits = Object.freeze({
  maxPacketBytes: 65_536,
  connectTimeoutMs: 5_000,
  keepaliveMaxS: 300,
  maxTopicLevels: 8,
  budgets: DEFAULT_BUDGETS,
  maxTerminalSubscriptions: 16,
  maxTargetSubscriptions: 1_024,
});

/** Limits as a caller may give them: any field, and any role's budget in part. */
export type LimitOverrides = Partial<Omit<BrokerLimits, "budgets">> & {
  readonly budgets?: Partial<Record<Role, Partial<Budget>>> | undefined;
};

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new SparekeyError("config_invalid", `${name} must be a positive integer`);
  return value;
}

function resolveBudgets(overrides: LimitOverrides["budgets"]): Readonly<Record<Role, Budget>> {
  const out = {} as Record<Role, Budget>;
  for (const role of Object.keys(DEFAULT_BUDGETS) as Role[]) {
    const b: Budget = { ...DEFAULT_BUDGETS[role], ...stripUndefined(overrides?.[role] ?? {}) };
    positiveInt(`budgets.${role}.ratePerS`, b.ratePerS);
    positiveInt(`budgets.${role}.burst`, b.burst);
    if (b.holdMaxMs !== null) positiveInt(`budgets.${role}.holdMaxMs`, b.holdMaxMs);
    out[role] = Object.freeze(b);
  }
  return Object.freeze(out);
}

/**
 * Defaults overlaid with `overrides`, checked, frozen. `maxTopicLevels` must leave room for the
 * deepest sparekey topic under `prefix`, or the broker would refuse its own protocol.
 */
export function resolveLimits(overrides: LimitOverrides, prefix: string): BrokerLimits {
  const { budgets, ...scalars } = overrides;
  const limits: BrokerLimits = {
    ...DEFAULT_LIMITS,
    ...stripUndefined(scalars),
    budgets: resolveBudgets(budgets),
  };
  for (const [name, value] of Object.entries(limits)) if (typeof value !== "object") positiveInt(name, value);
  const needed = prefix.split("/").length + DEEPEST_TOPIC_LEVELS;
  if (limits.maxTopicLevels < needed)
    throw new SparekeyError(
      "config_invalid",
      `maxTopicLevels must be at least ${needed} for prefix ${prefix}`,
    );
  // aedes clamps its own maxTopicLevels to 100 (qlobber's ceiling).
  if (limits.maxTopicLevels > 100)
    throw new SparekeyError("config_invalid", "maxTopicLevels must be at most 100");
  return Object.freeze(limits);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * A token bucket in its GCRA form (virtual scheduling): one number of state, no timers, no
 * allocation per packet. `take` either takes a token now or says how long until one is due.
 */
export class TokenBucket {
  /** Theoretical arrival time of the next conforming packet (ms). */
  private tat = 0;
  private readonly intervalMs: number;
  private readonly toleranceMs: number;

  constructor(ratePerS: number, burst: number) {
    this.intervalMs = 1000 / ratePerS;
    this.toleranceMs = (burst - 1) * this.intervalMs;
  }

  /** 0: a token was taken; > 0: none is left, the next is due in that many ms (nothing taken). */
  take(nowMs: number): number {
    const tat = Math.max(this.tat, nowMs);
    const wait = tat - this.toleranceMs - nowMs;
    if (wait > 0) return wait;
    this.tat = tat + this.intervalMs;
    return 0;
  }
}
