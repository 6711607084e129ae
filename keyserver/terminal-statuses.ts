import { LinkStates, parseLinkStatus } from "../common/link-status.js";
import type { Logger } from "../common/log.js";
import type { MqttClient } from "../common/mqtt.js";
import { TOPICS, type Topics } from "../schemas/topics.js";

/** What the relay op reads: the line epoch of a terminal whose latest status is `online`. */
export interface TerminalStatusView {
  onlineEpoch(term: string): number | undefined;
}

export interface TerminalStatusFollowerDeps {
  client: MqttClient;
  topics: Topics;
  logger: Logger;
  /** Terminals remembered at most (the one heard from longest ago is dropped). */
  capacity?: number;
}

/**
 * Follows every terminal's retained `terminals/{term}/status` (the `{term}` level is what the broker's
 * ACL vouches for), with the epoch rule. The relay op signs a frame with the caller's current epoch, and
 * signs none while it knows no `online` status for the caller.
 */
export class TerminalStatusFollower implements TerminalStatusView {
  private readonly log: Logger;
  private readonly filter: string;
  private readonly links: LinkStates;
  private readonly onMessage = (topic: string, payload: Buffer): void => this.handle(topic, payload);

  constructor(private readonly deps: TerminalStatusFollowerDeps) {
    this.log = deps.logger.child({ component: "terminal-statuses" });
    this.filter = deps.topics.filter("terminalStatus", { term: "+" });
    this.links = new LinkStates(deps.capacity ?? 1_000_000);
  }

  async start(): Promise<void> {
    this.deps.client.on("message", this.onMessage);
    await this.deps.client.subscribeAsync(this.filter, { qos: TOPICS.terminalStatus.qos });
  }

  async stop(): Promise<void> {
    this.deps.client.off("message", this.onMessage);
    if (this.deps.client.connected) await this.deps.client.unsubscribeAsync(this.filter);
    this.links.clear();
  }

  onlineEpoch(term: string): number | undefined {
    const status = this.links.get(term);
    return status?.state === "online" ? status.epoch : undefined;
  }

  /** Public for tests; the MQTT handler calls it. */
  handle(topic: string, payload: Buffer): void {
    const m = this.deps.topics.match(topic);
    if (m?.name !== "terminalStatus") return;
    const status = parseLinkStatus(payload);
    if (!status) {
      if (payload.length > 0) this.log.debug({ term: m.params.term }, "invalid terminal status ignored");
      return;
    }
    this.links.accept(m.params.term, status);
  }
}
