import type { Logger } from "../common/log.js";
import type { MqttClient } from "../common/mqtt.js";
import { REFUSAL_REASONS, type RefusalReason } from "../schemas/reasons.js";
import type { Topics } from "../schemas/topics.js";
import type { TargetEvents } from "./target-events.js";

export type UnlockOutcome =
  | { outcome: "applied" }
  | { outcome: "refused"; reason?: RefusalReason }
  | { outcome: "timed_out" };

export interface UnlockChannelDeps {
  client: MqttClient;
  topics: Topics;
  events: TargetEvents;
  logger: Logger;
}

/**
 * Publishes a signed command on the target's `unlock` topic (QoS 1, never retained: a retained
 * command would reach a target long after the caller gave up) and waits for the target's event that
 * names its cmd_id. The waiter is registered before the publish so a fast answer is not missed.
 */
export class UnlockChannel {
  constructor(private readonly deps: UnlockChannelDeps) {}

  async send(tid: string, cmdId: string, token: string, timeoutMs: number): Promise<UnlockOutcome> {
    const answer = this.deps.events.next(
      tid,
      (e) => e.cmd_id === cmdId && (e.type === "unlock_applied" || e.type === "unlock_refused"),
      timeoutMs,
    );
    // Not awaited: on a cut line the PUBACK never comes, and the caller is owed an answer at the deadline.
    // A command delivered after a reconnect is refused by the target (its nonce has moved on).
    this.deps.topics
      .publish(this.deps.client, "unlock", { tid }, token)
      .catch((err: unknown) => this.deps.logger.warn({ err, tid }, "unlock command not published"));
    const event = await answer;
    if (!event) return { outcome: "timed_out" };
    if (event.type === "unlock_applied") return { outcome: "applied" };
    const reason = event.reason;
    return reason !== undefined && isRefusal(reason)
      ? { outcome: "refused", reason }
      : { outcome: "refused" };
  }
}

function isRefusal(reason: string): reason is RefusalReason {
  return (REFUSAL_REASONS as readonly string[]).includes(reason);
}
