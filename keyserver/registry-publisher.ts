import { signToken } from "../common/jws.js";
import type { Logger } from "../common/log.js";
import type { MqttClient } from "../common/mqtt.js";
import { TokenType } from "../schemas/tokens.js";
import type { Topics } from "../schemas/topics.js";
import type { Issuer } from "./issuer.js";
import type { KeyStore, RegistrySnapshot, RevocationsSnapshot } from "./store/store.js";

export interface RegistryPublisherDeps {
  client: MqttClient;
  store: KeyStore;
  issuer: Issuer;
  topics: Topics;
  logger: Logger;
  /** How soon a publish that failed is tried again. */
  pollMs?: number;
  now?: () => number;
  /** Called after the issuer keys were read again and changed (the key server's status names them). */
  onIssuerChange?: () => void;
}

/** Registries read (synchronously, for SQLite) and signed per turn of the event loop when republishing all. */
export const REPUBLISH_PAGE = 200;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The store is the outbox: a target whose registry_version is above its published_version gets a
 * fresh signed snapshot, retained, and is then marked published. A crash between the two publishes it
 * again, which is harmless (same version, the target ignores what it already has). The fleet
 * revocation list goes the same way on `revocations`; writes from another process (the admin
 * CLI) arrive through the store's change feed.
 *
 * A broker keeps retained messages in memory: one that restarted has lost every registry and the
 * fleet list, and nothing in the store says so. So on start and on every reconnection of its client
 * the publisher republishes all of them, a page at a time, yielding between pages.
 */
export class RegistryPublisher {
  private readonly log: Logger;
  private retry: NodeJS.Timeout | undefined;
  private off: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private everything = false;
  private retryEverything = false;
  private readonly onConnect = () => {
    this.everything = true;
    this.wake();
  };

  constructor(private readonly deps: RegistryPublisherDeps) {
    this.log = deps.logger.child({ component: "registry-publisher" });
  }

  async start(): Promise<void> {
    this.off = this.deps.store.onChange(() => {
      this.refreshIssuer();
      this.wake();
    });
    this.deps.client.on("connect", this.onConnect);
    await this.republishAll();
  }

  async stop(): Promise<void> {
    this.deps.client.off("connect", this.onConnect);
    this.off?.();
    this.off = undefined;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    // An offline client holds QoS 1 publishes until it reconnects: waiting for them could hang shutdown.
    if (this.deps.client.connected) await this.running;
  }

  /**
   * `admin issuer rotate|retire` rewrites the key file from another process and bumps every registry:
   * the change that wakes the publisher is the moment to read the keys again, so the registries go out
   * with the new `issuers` (and downloads sign with the new key: the ops share this Issuer).
   */
  private refreshIssuer(): void {
    try {
      if (this.deps.issuer.refresh()) {
        this.log.info({ kid: this.deps.issuer.signingKey.kid }, "issuer keys reloaded");
        this.deps.onIssuerChange?.();
      }
    } catch (err) {
      this.log.error({ err }, "issuer key file unreadable; keeping the keys loaded before");
    }
  }

  private wake(): void {
    this.publishNow().catch((err: unknown) => {
      this.log.error({ err }, "registry publish failed");
      this.retryLater();
    });
  }

  /** No change may come to wake the publisher after a failure, so it tries again by itself. */
  private retryLater(everything = false): void {
    if (everything) this.retryEverything = true;
    if (!this.off || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.retryEverything) this.everything = true;
      this.retryEverything = false;
      this.wake();
    }, this.deps.pollMs ?? 200);
  }

  /** Publish the fleet list and every registry, pending or not (what a restarted broker lost). */
  republishAll(): Promise<void> {
    this.everything = true;
    return this.publishNow();
  }

  /** Publish every pending registry; concurrent calls coalesce into one more pass. */
  publishNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        // One pass at a time, so an older snapshot never overwrites a newer retained one.
        do {
          this.again = false;
          const all = this.everything;
          this.everything = false;
          await (all ? this.publishAll() : this.publishPending());
        } while (this.again || this.everything);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async publishPending(): Promise<void> {
    // The fleet list goes first: a fleet revocation also revokes the slot in each registry, and the
    // target should end the sessions for the reason the operator gave (`revoked_fleet`).
    let failed = !(await this.publishRevocations(await this.deps.store.pendingRevocations()));
    for (const snapshot of await this.deps.store.pendingRegistries())
      if (!(await this.publishRegistry(snapshot))) failed = true;
    if (failed) this.retryLater();
  }

  /** The fleet list first, as for pending changes; then every target's registry, page by page. */
  private async publishAll(): Promise<void> {
    let failed = !(await this.publishRevocations(await this.deps.store.currentRevocations()));
    let after: string | undefined;
    let count = 0;
    for (;;) {
      const page = await this.deps.store.registries({
        ...(after !== undefined ? { after } : {}),
        limit: REPUBLISH_PAGE,
      });
      for (const snapshot of page) if (!(await this.publishRegistry(snapshot, false))) failed = true;
      count += page.length;
      const last = page.at(-1);
      if (!last || page.length < REPUBLISH_PAGE) break;
      after = last.tid;
      await nextTurn();
    }
    this.log.info({ registries: count }, "registries and fleet list republished");
    // Marking is left to a pending pass (a write per registry): it publishes the few that were pending.
    this.again = true;
    if (failed) this.retryLater(true);
  }

  /** False when the registry could not be published. */
  private async publishRegistry(snapshot: RegistrySnapshot, mark = true): Promise<boolean> {
    const iat = Math.floor((this.deps.now ?? Date.now)() / 1000);
    const { issuer } = this.deps;
    const jws = signToken(
      TokenType.registry,
      {
        v: 1,
        tid: snapshot.tid,
        version: snapshot.version,
        slots: snapshot.slots,
        issuers: issuer.registryIssuers(),
        iat,
      },
      issuer.listSigningKey,
    );
    try {
      await this.deps.topics.publish(this.deps.client, "registry", { tid: snapshot.tid }, jws);
      if (mark) await this.deps.store.markPublished(snapshot.tid, snapshot.version);
      this.log.debug({ tid: snapshot.tid, version: snapshot.version }, "registry published");
      return true;
    } catch (err) {
      this.log.warn({ err, tid: snapshot.tid }, "registry not published; will retry");
      return false;
    }
  }

  /** False when the list could not be published. */
  private async publishRevocations(pending: RevocationsSnapshot | undefined): Promise<boolean> {
    if (!pending) return true;
    const iat = Math.floor((this.deps.now ?? Date.now)() / 1000);
    const jws = signToken(
      TokenType.revocations,
      { v: 1, version: pending.version, revoked: pending.revoked, iat },
      this.deps.issuer.listSigningKey,
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
