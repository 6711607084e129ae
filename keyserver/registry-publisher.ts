import { signToken } from "../common/jws.js";
import type { Logger } from "../common/log.js";
import type { MqttClient } from "../common/mqtt.js";
import { TokenType } from "../schemas/tokens.js";
import type { Topics } from "../schemas/topics.js";
import type { Issuer } from "./issuer.js";
import type { KeyStore } from "./store/store.js";

export interface RegistryPublisherDeps {
  client: MqttClient;
  store: KeyStore;
  issuer: Issuer;
  topics: Topics;
  logger: Logger;
  /** How soon a publish that failed is tried again. */
  pollMs?: number;
  now?: () => number;
}

/**
 * The store is the outbox: a target whose registry_version is above its published_version gets a
 * fresh signed snapshot, retained, and is then marked published. A crash between the two publishes it
 * again, which is harmless (same version, the target ignores what it already has). The fleet
 * revocation list goes the same way on `revocations`; writes from another process (the admin
 * CLI) arrive through the store's change feed.
 */
export class RegistryPublisher {
  private readonly log: Logger;
  private retry: NodeJS.Timeout | undefined;
  private off: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly deps: RegistryPublisherDeps) {
    this.log = deps.logger.child({ component: "registry-publisher" });
  }

  async start(): Promise<void> {
    this.off = this.deps.store.onChange(() => this.wake());
    await this.publishNow();
  }

  async stop(): Promise<void> {
    this.off?.();
    this.off = undefined;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    // An offline client holds QoS 1 publishes until it reconnects: waiting for them could hang shutdown.
    if (this.deps.client.connected) await this.running;
  }

  private wake(): void {
    this.publishNow().catch((err: unknown) => {
      this.log.error({ err }, "registry publish failed");
      this.retryLater();
    });
  }

  /** No change may come to wake the publisher after a failure, so it tries again by itself. */
  private retryLater(): void {
    if (!this.off || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.wake();
    }, this.deps.pollMs ?? 200);
  }

  /** Publish every pending registry; concurrent calls coalesce into one more pass. */
  publishNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.publishPending();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async publishPending(): Promise<void> {
    // The fleet list goes first: a fleet revocation also revokes the slot in each registry, and the
    // target should end the sessions for the reason the operator gave (`revoked_fleet`).
    let failed = !(await this.publishRevocations());
    for (const snapshot of await this.deps.store.pendingRegistries()) {
      const iat = Math.floor((this.deps.now ?? Date.now)() / 1000);
      const jws = signToken(
        TokenType.registry,
        { v: 1, tid: snapshot.tid, version: snapshot.version, slots: snapshot.slots, iat },
        this.deps.issuer.signingKey,
      );
      try {
        await this.deps.topics.publish(this.deps.client, "registry", { tid: snapshot.tid }, jws);
        await this.deps.store.markPublished(snapshot.tid, snapshot.version);
        this.log.info({ tid: snapshot.tid, version: snapshot.version }, "registry published");
      } catch (err) {
        failed = true;
        this.log.warn({ err, tid: snapshot.tid }, "registry not published; will retry");
      }
    }
    if (failed) this.retryLater();
  }

  /** False when a pending list could not be published. */
  private async publishRevocations(): Promise<boolean> {
    const pending = await this.deps.store.pendingRevocations();
    if (!pending) return true;
    const iat = Math.floor((this.deps.now ?? Date.now)() / 1000);
    const jws = signToken(
      TokenType.revocations,
      { v: 1, version: pending.version, revoked: pending.revoked, iat },
      this.deps.issuer.signingKey,
    );
    try {
      await this.deps.topics.publish(this.deps.client, "revocations", {}, jws);
      await this.deps.store.markRevocationsPublished(pending.version);
      this.log.info({ version: pending.version }, "fleet revocations published");
      return true;
    } catch (err) {
      this.log.warn({ err }, "fleet revocations not published; will retry");
      return false;
    }
  }
}
