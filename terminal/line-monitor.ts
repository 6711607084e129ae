import type { Logger } from "../common/log.js";
import { KeyserverStatus } from "../schemas/messages.js";
import { TOPICS, type Topics } from "../schemas/topics.js";
import { parseJson, validator } from "../schemas/validate.js";
import type { MessageBus } from "./bus.js";

/** Whether frames may flow, and if not, why (shown on the status line as `line down: <why>`). */
export interface LineStatus {
  readonly up: boolean;
  /** Our own MQTT connection; while it is down no challenge can arrive either. */
  readonly connected: boolean;
  readonly why: string | undefined;
}

/** The MQTT.js client events the monitor reads (an MqttClient fits). */
export interface ConnectionEvents {
  readonly connected: boolean;
  on(event: "connect" | "close" | "offline" | "reconnect", listener: () => void): unknown;
  off(event: "connect" | "close" | "offline" | "reconnect", listener: () => void): unknown;
}

export interface LineMonitorDeps {
  connection: ConnectionEvents;
  bus: MessageBus;
  topics: Topics;
  /**
   * Relay mode: the key server's line is part of ours (no key server, no frame). Stored keys and
   * fobs work without it, so for them only the own connection counts.
   */
  needsKeyserver: boolean;
  logger: Logger;
  onChange?: (status: LineStatus) => void;
}

const statusValidator = validator(KeyserverStatus, "keyserver status");

/**
 * Watches the terminal's own connection and, in relay mode, the retained `keyserver/status`. A status
 * with an older epoch than the latest seen is a late will of an old connection and is ignored
 * (docs/PROTOCOL.md, link state and epochs). No status seen yet counts as up: the relay RPC itself proves the key server is there.
 */
export class LineMonitor {
  private connected = false;
  private reconnecting = false;
  private keyserverOnline = true;
  private keyserverEpoch = -1;
  private last: LineStatus | undefined;
  private detachBus: (() => void) | undefined;
  private readonly listeners: Array<[Parameters<ConnectionEvents["on"]>[0], () => void]> = [];
  private readonly log: Logger;

  constructor(private readonly deps: LineMonitorDeps) {
    this.log = deps.logger.child({ component: "line-monitor" });
  }

  status(): LineStatus {
    const keyserverDown = this.deps.needsKeyserver && !this.keyserverOnline;
    let why: string | undefined;
    if (!this.connected) why = this.reconnecting ? "connection lost, reconnecting" : "connection lost";
    else if (keyserverDown) why = "key server offline";
    return { up: why === undefined, connected: this.connected, why };
  }

  async start(): Promise<void> {
    const { connection, bus, topics } = this.deps;
    this.connected = connection.connected;
    const on = (event: Parameters<ConnectionEvents["on"]>[0], listener: () => void) => {
      connection.on(event, listener);
      this.listeners.push([event, listener]);
    };
    on("connect", () => {
      this.connected = true;
      this.reconnecting = false;
      this.changed();
    });
    on("close", () => {
      this.connected = false;
      this.changed();
    });
    on("offline", () => {
      this.connected = false;
      this.changed();
    });
    on("reconnect", () => {
      this.connected = false;
      this.reconnecting = true;
      this.changed();
    });
    if (this.deps.needsKeyserver) {
      const topic = topics.keyserverStatus();
      this.detachBus = bus.onMessage((t, payload) => {
        if (t === topic) this.onKeyserverStatus(payload);
      });
      await bus.subscribe(topic, TOPICS.keyserverStatus.qos);
    }
    this.changed();
  }

  async stop(): Promise<void> {
    for (const [event, listener] of this.listeners) this.deps.connection.off(event, listener);
    this.listeners.length = 0;
    this.detachBus?.();
    this.detachBus = undefined;
    if (this.deps.needsKeyserver) {
      await this.deps.bus.unsubscribe(this.deps.topics.keyserverStatus()).catch(() => undefined);
    }
  }

  private onKeyserverStatus(payload: Buffer): void {
    const status = parseJson(payload.toString("utf8"));
    if (!statusValidator.is(status)) {
      this.log.warn({ issues: statusValidator.lastIssues() }, "malformed keyserver status ignored");
      return;
    }
    if (status.epoch < this.keyserverEpoch) {
      this.log.debug({ epoch: status.epoch, latest: this.keyserverEpoch }, "older keyserver status ignored");
      return;
    }
    this.keyserverEpoch = status.epoch;
    this.keyserverOnline = status.state === "online";
    this.changed();
  }

  /** Tell the listener only about real changes, so a burst of client events is one transition. */
  private changed(): void {
    const now = this.status();
    const last = this.last;
    if (last && last.up === now.up && last.connected === now.connected && last.why === now.why) return;
    this.last = now;
    if (now.up) this.log.info("line up");
    else this.log.warn({ why: now.why }, "line down");
    this.deps.onChange?.(now);
  }
}
