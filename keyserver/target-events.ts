import type { Logger } from "../common/log.js";
import type { MqttClient } from "../common/mqtt.js";
import { TargetEvent } from "../schemas/messages.js";
import { TOPICS, type Topics } from "../schemas/topics.js";
import { parseJson, validator } from "../schemas/validate.js";
import type { AccessLogRecorder } from "./access-log.js";

export type TargetEventListener = (tid: string, event: TargetEvent) => void;

export interface TargetEventsDeps {
  client: MqttClient;
  topics: Topics;
  logger: Logger;
  /** Where every valid event is recorded (started and stopped with this subscription). */
  accessLog?: AccessLogRecorder;
}

const targetEvent = validator(TargetEvent, "target event");

/**
 * One subscription to every target's `events` topic, fanned out to listeners: unlock outcomes (by cmd_id) and
 * fleet revocation confirmations, and the access log. Events are validated and must name the target of
 * their topic.
 */
export class TargetEvents {
  private readonly log: Logger;
  private readonly filter: string;
  private readonly listeners = new Set<TargetEventListener>();
  private readonly onMessage = (topic: string, payload: Buffer): void => this.handle(topic, payload);

  constructor(private readonly deps: TargetEventsDeps) {
    this.log = deps.logger.child({ component: "target-events" });
    this.filter = deps.topics.filter("events", { tid: "+" });
  }

  async start(): Promise<void> {
    await this.deps.accessLog?.start();
    this.deps.client.on("message", this.onMessage);
    await this.deps.client.subscribeAsync(this.filter, { qos: TOPICS.events.qos });
  }

  async stop(): Promise<void> {
    this.deps.client.off("message", this.onMessage);
    try {
      if (this.deps.client.connected) await this.deps.client.unsubscribeAsync(this.filter);
    } finally {
      await this.deps.accessLog?.stop();
    }
  }

  /** Returns the function that removes the listener. */
  listen(listener: TargetEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The first event of `tid` that `accept` takes, or undefined after `timeoutMs`. */
  next(
    tid: string,
    accept: (e: TargetEvent) => boolean,
    timeoutMs: number,
  ): Promise<TargetEvent | undefined> {
    return new Promise((resolve) => {
      const off = this.listen((from, event) => {
        if (from !== tid || !accept(event)) return;
        clearTimeout(timer);
        off();
        resolve(event);
      });
      const timer = setTimeout(() => {
        off();
        resolve(undefined);
      }, timeoutMs);
    });
  }

  handle(topic: string, payload: Buffer): void {
    const m = this.deps.topics.match(topic);
    if (m?.name !== "events") return;
    const { tid } = m.params;
    const value = parseJson(payload.toString("utf8"));
    if (!targetEvent.is(value) || value.tid !== tid) {
      this.log.warn({ tid }, "invalid target event ignored");
      return;
    }
    this.deps.accessLog?.record(value);
    for (const listener of [...this.listeners]) {
      try {
        listener(tid, value);
      } catch (err) {
        this.log.error({ err, tid }, "target event listener failed");
      }
    }
  }
}
