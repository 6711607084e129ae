import type { Logger } from "../common/log.js";
import type { TargetEvent } from "../schemas/messages.js";
import type { AccessLog, AccessLogEntry } from "./store/store.js";

export const DEFAULT_ACCESS_LOG_RETENTION_DAYS = 90;
const DAY_MS = 86_400_000;

export interface AccessLogRecorderOptions {
  store: AccessLog;
  logger: Logger;
  /** Rows older than this many days are pruned at start and once a day. */
  retentionDays?: number;
  /** Unix ms. */
  now?: () => number;
  /** Longest an event waits in memory before its batch is written. */
  flushMs?: number;
  /** A batch this large is written at once. */
  maxBatch?: number;
  /** Events held while the store is slow; beyond it the oldest are dropped (and counted in the log). */
  maxPending?: number;
}

/**
 * Writes the target events the key server hears to the access log in batches: `record` only queues,
 * so a burst of events costs one transaction per batch rather than one per message.
 */
export class AccessLogRecorder {
  private pending: AccessLogEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pruner: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private dropped = 0;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly retentionMs: number;
  private readonly flushMs: number;
  private readonly maxBatch: number;
  private readonly maxPending: number;

  constructor(private readonly deps: AccessLogRecorderOptions) {
    this.log = deps.logger.child({ component: "access-log" });
    this.now = deps.now ?? Date.now;
    this.retentionMs = (deps.retentionDays ?? DEFAULT_ACCESS_LOG_RETENTION_DAYS) * DAY_MS;
    this.flushMs = deps.flushMs ?? 250;
    this.maxBatch = deps.maxBatch ?? 500;
    this.maxPending = deps.maxPending ?? 50_000;
  }

  async start(): Promise<void> {
    await this.prune();
    this.pruner = setInterval(() => void this.prune(), DAY_MS);
    this.pruner.unref();
  }

  /** Write what is queued, then stop pruning. */
  async stop(): Promise<void> {
    if (this.pruner) clearInterval(this.pruner);
    this.pruner = undefined;
    await this.flush();
  }

  record(event: TargetEvent): void {
    if (this.pending.length >= this.maxPending) {
      this.pending.shift();
      this.dropped++;
    }
    this.pending.push({ received: this.now(), event });
    if (this.pending.length >= this.maxBatch) this.schedule(0);
    else this.schedule(this.flushMs);
  }

  /** Write everything queued so far; resolves when it is in the store. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.then(() => this.writeAll());
    return this.writing;
  }

  private schedule(delayMs: number): void {
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), delayMs);
  }

  private async writeAll(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        await this.deps.store.appendAccessLog(batch);
      } catch (err) {
        this.log.error({ err, events: batch.length }, "access log write failed; events lost");
      }
    }
    if (this.dropped > 0) {
      this.log.warn({ events: this.dropped }, "access log fell behind; oldest events dropped");
      this.dropped = 0;
    }
  }

  private async prune(): Promise<void> {
    try {
      const removed = await this.deps.store.pruneAccessLog(this.now() - this.retentionMs);
      if (removed > 0) this.log.info({ removed }, "access log pruned");
    } catch (err) {
      this.log.error({ err }, "access log prune failed");
    }
  }
}
