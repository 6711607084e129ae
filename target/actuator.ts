import { execFile } from "node:child_process";
import type { Logger } from "../common/log.js";
import type { LockState } from "../schemas/messages.js";

export interface ActuatorChange {
  readonly state: LockState;
  readonly reason: string;
  readonly slot?: string | undefined;
  readonly term?: string | undefined;
}

const RUN_TIMEOUT_MS = 30_000;

/**
 * Runs the configured command on every state change: argv without a shell (no quoting bugs, no
 * injection through ids), the change in its environment. Runs one at a time in order, so the lock
 * never sees "unavailable" overtaken by an earlier "available". Failures are logged, never thrown.
 */
export class Actuator {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly deps: { argv: readonly string[] | undefined; tid: string; logger: Logger }) {}

  run(change: ActuatorChange): void {
    const argv = this.deps.argv;
    const [file, ...args] = argv ?? [];
    if (file === undefined) return;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SPAREKEY_TID: this.deps.tid,
      SPAREKEY_STATE: change.state,
      SPAREKEY_REASON: change.reason,
      SPAREKEY_SLOT: change.slot ?? "",
      SPAREKEY_TERM: change.term ?? "",
    };
    this.chain = this.chain.then(
      () =>
        new Promise<void>((resolve) => {
          execFile(file, args, { env, timeout: RUN_TIMEOUT_MS }, (err) => {
            if (err) this.deps.logger.warn({ err, state: change.state }, "actuator failed");
            resolve();
          });
        }),
    );
  }

  /** Resolves when every queued run has finished. */
  idle(): Promise<void> {
    return this.chain;
  }
}
