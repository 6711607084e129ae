import type { Logger } from "../common/log.js";
import type { RevocationStore } from "./store/store.js";
import type { TargetEvents } from "./target-events.js";

export interface RevocationConfirmationsDeps {
  store: Pick<RevocationStore, "confirmRevocations">;
  events: TargetEvents;
  logger: Logger;
}

/**
 * Records which targets applied which fleet revocation version, from their `revocations_applied`
 * events (`sparekey admin revocations` reads it). The event's tid is its topic's, which the broker's
 * ACL vouches for.
 */
export class RevocationConfirmations {
  private readonly log: Logger;
  private off: (() => void) | undefined;

  constructor(private readonly deps: RevocationConfirmationsDeps) {
    this.log = deps.logger.child({ component: "revocation-confirmations" });
  }

  async start(): Promise<void> {
    this.off = this.deps.events.listen((tid, event) => {
      if (event.type !== "revocations_applied" || event.version === undefined) return;
      const version = event.version;
      this.deps.store
        .confirmRevocations(tid, version)
        .then((known) => {
          if (known) this.log.info({ tid, version }, "fleet revocations confirmed");
          else this.log.warn({ tid, version }, "confirmation from a target that is not paired ignored");
        })
        .catch((err: unknown) => this.log.error({ err, tid }, "confirmation not recorded"));
    });
  }

  async stop(): Promise<void> {
    this.off?.();
    this.off = undefined;
  }
}
