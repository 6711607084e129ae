import { SparekeyError } from "../common/errors.js";
import { DEEPEST_TOPIC_LEVELS } from "../schemas/topics.js";

/** What the broker bounds that aedes does not, or bounds too loosely by default (DESIGN §8). */
export interface BrokerLimits {
  /** Largest MQTT packet (fixed header included) accepted; larger ones drop the connection unread. */
  readonly maxPacketBytes: number;
  /** A TCP connection that has not sent CONNECT by then is closed. */
  readonly connectTimeoutMs: number;
  /** Largest keepalive a client may ask for; 0 (no keepalive) is refused too, so dead peers get noticed. */
  readonly keepaliveMaxS: number;
  /** Deepest topic or filter (levels, prefix included); checked before the ACL splits a topic. */
  readonly maxTopicLevels: number;
  /** Sustained publishes per second per client. */
  readonly publishRatePerS: number;
  /** Publishes a client may send at once above the sustained rate. */
  readonly publishBurst: number;
  /** Longest a publish over the rate is held back before the client is dropped instead. */
  readonly publishMaxDelayMs: number;
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
  publishRatePerS: 50,
  publishBurst: 100,
  publishMaxDelayMs: 1_000,
  maxTerminalSubscriptions: 16,
  maxTargetSubscriptions: 1_024,
});

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new SparekeyError("config_invalid", `${name} must be a positive integer`);
  return value;
}

/**
 * Defaults overlaid with `overrides`, checked, frozen. `maxTopicLevels` must leave room for the
 * deepest sparekey topic under `prefix`, or the broker would refuse its own protocol.
 */
export function resolveLimits(overrides: Partial<BrokerLimits>, prefix: string): BrokerLimits {
  const limits: BrokerLimits = { ...DEFAULT_LIMITS, ...stripUndefined(overrides) };
  for (const [name, value] of Object.entries(limits)) positiveInt(name, value);
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

/** `PublishRate.admit` verdict: refuse this publish (the client is over its rate for too long). */
export const REFUSE = -1;

/**
 * Per-client publish rate as a GCRA (the virtual-scheduling form of a token bucket): one number of
 * state, no timers, no allocation per message.
 *
 * Policy (decided here, DESIGN §8): MQTT 3.1.1 cannot refuse one PUBLISH without dropping the
 * connection, and silently dropping a QoS 1 message after its PUBACK would lie to the sender. So a
 * publish over the rate is *held back* (admit returns a delay; the hook answers aedes only then, and
 * aedes reads nothing more from that socket meanwhile: TCP backpressure slows the sender). Only when
 * the backlog would exceed `maxDelayMs` is the publish refused, which disconnects the client.
 * Legitimate senders (a frame every few hundred ms) never come near the rate.
 */
export class PublishRate {
  /** Theoretical arrival time of the next conforming publish (ms). */
  private tat = 0;
  private readonly intervalMs: number;
  private readonly toleranceMs: number;
  private readonly maxDelayMs: number;

  constructor(ratePerS: number, burst: number, maxDelayMs: number) {
    this.intervalMs = 1000 / ratePerS;
    this.toleranceMs = (burst - 1) * this.intervalMs;
    this.maxDelayMs = maxDelayMs;
  }

  /** 0: go now; > 0: go after that many ms; `REFUSE`: over the rate for longer than allowed. */
  admit(nowMs: number): number {
    const tat = Math.max(this.tat, nowMs);
    const delay = tat - this.toleranceMs - nowMs;
    if (delay > this.maxDelayMs) return REFUSE;
    this.tat = tat + this.intervalMs;
    return Math.max(delay, 0);
  }
}
