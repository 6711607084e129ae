import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../common/atomic-file.js";
import { decodeToken } from "../common/jws.js";
import type { Logger } from "../common/log.js";
import { TerminalCarried } from "../schemas/records.js";
import { TokenType } from "../schemas/tokens.js";
import type { Topics } from "../schemas/topics.js";
import type { MessageBus } from "./bus.js";
import { ensureTerminalDir } from "./files.js";

/**
 * The fleet revocation list and target registries a terminal fetched while online, kept to be carried
 * to targets cut off from the key server (docs/PROTOCOL.md, carried revocations).
 */

/** Which list: the fleet's, or the registry of one target. */
export type CarriedList =
  | { readonly kind: "revocations" }
  | { readonly kind: "registry"; readonly tid: string };

export function carriedPath(dir: string): string {
  return join(dir, "carried.json");
}

function emptyCarried(term: string): TerminalCarried {
  return { v: 1, term, registries: {} };
}

/** The kept lists; an unreadable or foreign file counts as empty (carrying is best effort). */
export function readCarried(dir: string, term: string): TerminalCarried {
  const kept = readJsonFile(carriedPath(dir), TerminalCarried, "carried lists");
  return kept?.term === term ? kept : emptyCarried(term);
}

function keptToken(c: TerminalCarried, list: CarriedList): string | undefined {
  return list.kind === "revocations"
    ? c.revocations
    : Object.hasOwn(c.registries, list.tid)
      ? c.registries[list.tid]
      : undefined;
}

/**
 * The version `token` holds if it is a well-formed list of this kind (and a registry of this target);
 * undefined otherwise. The terminal holds no issuer key: the signature is the target's to check.
 */
export function carriedVersion(token: string, list: CarriedList): number | undefined {
  try {
    if (list.kind === "revocations") return decodeToken(token, TokenType.revocations).payload.version;
    const { payload } = decodeToken(token, TokenType.registry);
    return payload.tid === list.tid ? payload.version : undefined;
  } catch {
    return undefined;
  }
}

/** Keep `token` if it is a valid list of this kind newer than the kept one; true when written. */
export function keepCarried(dir: string, term: string, list: CarriedList, token: string): boolean {
  const version = carriedVersion(token, list);
  if (version === undefined) return false;
  let kept: TerminalCarried;
  try {
    kept = readCarried(dir, term);
  } catch {
    kept = emptyCarried(term); // a damaged file is replaced by one that validates
  }
  const current = keptToken(kept, list);
  if (current !== undefined && (carriedVersion(current, list) ?? 0) >= version) return false;
  if (list.kind === "revocations") kept.revocations = token;
  // defineProperty: a tid may be `__proto__` (a valid id), which an assignment would lose.
  else
    Object.defineProperty(kept.registries, list.tid, {
      value: token,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  ensureTerminalDir(dir);
  writeJsonAtomic(carriedPath(dir), kept, 0o600);
  return true;
}

/** What to carry to `tid`: its registry, then the fleet list, as kept. */
export function carriedFor(dir: string, term: string, tid: string, logger: Logger): string[] {
  let kept: TerminalCarried;
  try {
    kept = readCarried(dir, term);
  } catch (err) {
    logger.warn({ err }, "carried lists unreadable: nothing carried");
    return [];
  }
  return [keptToken(kept, { kind: "registry", tid }), kept.revocations].filter(
    (t): t is string => t !== undefined,
  );
}

/** Publish `tokens` on `targets/{tid}/carried/{term}`; a failure is logged, never thrown. */
export async function carryTo(
  o: { bus: MessageBus; topics: Topics; tid: string; term: string; logger: Logger },
  tokens: readonly string[],
): Promise<void> {
  for (const token of tokens) {
    try {
      await o.topics.publish(o.bus, "carried", { tid: o.tid, term: o.term }, token);
    } catch (err) {
      o.logger.warn({ err, tid: o.tid }, "cannot carry a list to the target");
    }
  }
}

export interface CarriedFetcherDeps {
  bus: MessageBus;
  topics: Topics;
  dir: string;
  term: string;
  /** The targets whose registries to keep (those the wallet holds keys for). */
  tids: readonly string[];
  logger: Logger;
  /** A newer list was kept. */
  onKept?: (list: CarriedList, token: string) => void;
}

/** While online: follow `fleet/revocations` and the registries of `tids`, keep the newest of each. */
export class CarriedFetcher {
  private readonly lists = new Map<string, CarriedList>();
  private off: (() => void) | undefined;

  constructor(private readonly deps: CarriedFetcherDeps) {
    this.lists.set(deps.topics.revocations(), { kind: "revocations" });
    for (const tid of deps.tids) this.lists.set(deps.topics.registry(tid), { kind: "registry", tid });
  }

  /** Subscribes; a refused subscription is logged (an older broker's ACL) and the rest still work. */
  async start(): Promise<void> {
    const { bus, logger } = this.deps;
    this.off = bus.onMessage((topic, payload) => this.onMessage(topic, payload));
    for (const topic of this.lists.keys()) {
      try {
        await bus.subscribe(topic, 1);
      } catch (err) {
        logger.warn({ err, topic }, "cannot follow a list to carry");
      }
    }
  }

  async stop(): Promise<void> {
    this.off?.();
    this.off = undefined;
    for (const topic of this.lists.keys()) await this.deps.bus.unsubscribe(topic).catch(() => undefined);
  }

  private onMessage(topic: string, payload: Buffer): void {
    const list = this.lists.get(topic);
    if (!list || payload.length === 0 || payload.length > 8192) return;
    const token = payload.toString("utf8");
    const { dir, term, logger } = this.deps;
    try {
      if (!keepCarried(dir, term, list, token)) return;
    } catch (err) {
      logger.warn({ err }, "cannot keep a list to carry");
      return;
    }
    logger.debug({ list }, "kept a newer list to carry");
    this.deps.onKept?.(list, token);
  }
}

/** Registries followed at once while using a target (the broker allows a terminal 16 subscriptions). */
export const MAX_REGISTRIES_FOLLOWED = 8;

/** Something `terminal use` runs beside the frame loop and stops with it. */
export interface Companion {
  stop(): Promise<void>;
}

/**
 * Before the first frame to `tid`: carry what is kept for it, then keep following the lists while
 * online; a newer list for this target (or the fleet's) is carried at once.
 */
export async function startCarrying(o: {
  bus: MessageBus;
  topics: Topics;
  dir: string;
  term: string;
  tid: string;
  /** Every target the wallet holds a key for. */
  tids: readonly string[];
  logger: Logger;
}): Promise<Companion> {
  const target = { bus: o.bus, topics: o.topics, tid: o.tid, term: o.term, logger: o.logger };
  await carryTo(target, carriedFor(o.dir, o.term, o.tid, o.logger));
  // The broker caps a terminal's subscriptions: the target in use first, then a few more.
  const tids = [o.tid, ...o.tids.filter((t) => t !== o.tid)].slice(0, MAX_REGISTRIES_FOLLOWED);
  const fetcher = new CarriedFetcher({
    bus: o.bus,
    topics: o.topics,
    dir: o.dir,
    term: o.term,
    tids,
    logger: o.logger,
    onKept: (list, token) => {
      if (list.kind === "revocations" || list.tid === o.tid) void carryTo(target, [token]);
    },
  });
  await fetcher.start();
  return fetcher;
}
