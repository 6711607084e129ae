import type { TSchema } from "@sinclair/typebox";
import { SparekeyError } from "../common/errors.js";
import { CompactJws, ID_REGEX } from "./common.js";
import { Challenge, LinkStatus, TargetEvent, TargetState } from "./messages.js";
import { RpcEnvelope, RpcReply } from "./rpc.js";

export const DEFAULT_PREFIX = "sparekey/v1";
const PREFIX_REGEX = /^[A-Za-z0-9_-]{1,64}(\/[A-Za-z0-9_-]{1,64}){0,3}$/;

/** Refuse an id before it can become a topic level: `+`, `#` and `/` would widen a subscription or ACL. */
export function assertId(id: unknown, what = "id"): string {
  if (typeof id !== "string" || !ID_REGEX.test(id)) {
    throw new SparekeyError("invalid_id", `${what} must match ^[A-Za-z0-9_-]{1,64}$`);
  }
  return id;
}

export function isId(id: unknown): id is string {
  return typeof id === "string" && ID_REGEX.test(id);
}

export function assertPrefix(prefix: string): string {
  if (!PREFIX_REGEX.test(prefix))
    throw new SparekeyError("config_invalid", "topic prefix must be 1-4 id-like levels");
  return prefix;
}

/** How a payload travels: signed token (string) or JSON document. */
export type Encoding = "jws" | "json";

export interface TopicSpec {
  /** Pattern relative to the prefix; `{tid}`, `{term}`, `{op}` are single levels. */
  readonly pattern: string;
  readonly schema: TSchema;
  readonly encoding: Encoding;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  readonly description: string;
}

/** The protocol in one table (DESIGN §3): publishers, handlers, ACLs and the AsyncAPI document read it. */
export const TOPICS = {
  challenge: {
    pattern: "targets/{tid}/challenge",
    schema: Challenge,
    encoding: "json",
    qos: 0,
    retain: true,
    description: "target -> terminals: a fresh nonce every period",
  },
  frames: {
    pattern: "targets/{tid}/frames",
    schema: CompactJws,
    encoding: "jws",
    qos: 0,
    retain: false,
    description: "terminal -> target: sparekey-frame+jws or sparekey-relay+jws; never retained",
  },
  state: {
    pattern: "targets/{tid}/state",
    schema: TargetState,
    encoding: "json",
    qos: 1,
    retain: true,
    description: "target -> anyone allowed: available / unavailable / offline (will)",
  },
  events: {
    pattern: "targets/{tid}/events",
    schema: TargetEvent,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "target -> key server, dashboards: decisions with machine-readable reasons",
  },
  registry: {
    pattern: "targets/{tid}/registry",
    schema: CompactJws,
    encoding: "jws",
    qos: 1,
    retain: true,
    description: "key server -> target: sparekey-registry+jws snapshot of permitted slots",
  },
  unlock: {
    pattern: "targets/{tid}/unlock",
    schema: CompactJws,
    encoding: "jws",
    qos: 1,
    retain: false,
    description: "key server -> target: sparekey-unlock+jws one-time command",
  },
  revocations: {
    pattern: "fleet/revocations",
    schema: CompactJws,
    encoding: "jws",
    qos: 1,
    retain: true,
    description: "key server -> all targets: sparekey-revocations+jws",
  },
  terminalStatus: {
    pattern: "terminals/{term}/status",
    schema: LinkStatus,
    encoding: "json",
    qos: 1,
    retain: true,
    description: "terminal (and its will): online / offline with a rising epoch",
  },
  keyserverStatus: {
    pattern: "keyserver/status",
    schema: LinkStatus,
    encoding: "json",
    qos: 1,
    retain: true,
    description: "key server (and its will): online / offline with a rising epoch",
  },
  rpcRequest: {
    pattern: "keyserver/rpc/{term}/{op}",
    schema: RpcEnvelope,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "terminal -> key server: request {v, id, ...}; the caller is the {term} level",
  },
  rpcReply: {
    pattern: "terminals/{term}/rpc",
    schema: RpcReply,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "key server -> terminal: reply {v, id, ok, result?, error?}",
  },
} as const satisfies Record<string, TopicSpec>;
export type TopicName = keyof typeof TOPICS;

/** Topic builders; every id is checked before it becomes a level. */
export class Topics {
  readonly prefix: string;
  constructor(prefix: string = DEFAULT_PREFIX) {
    this.prefix = assertPrefix(prefix);
  }
  challenge(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/challenge`;
  }
  frames(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/frames`;
  }
  state(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/state`;
  }
  events(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/events`;
  }
  registry(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/registry`;
  }
  unlock(tid: string): string {
    return `${this.prefix}/targets/${assertId(tid, "tid")}/unlock`;
  }
  revocations(): string {
    return `${this.prefix}/fleet/revocations`;
  }
  terminalStatus(term: string): string {
    return `${this.prefix}/terminals/${assertId(term, "term")}/status`;
  }
  keyserverStatus(): string {
    return `${this.prefix}/keyserver/status`;
  }
  rpcRequest(term: string, op: string): string {
    return `${this.prefix}/keyserver/rpc/${assertId(term, "term")}/${assertId(op, "op")}`;
  }
  rpcReply(term: string): string {
    return `${this.prefix}/terminals/${assertId(term, "term")}/rpc`;
  }
  /** The levels after the prefix, or undefined when the topic is outside it. */
  relative(topic: string): string[] | undefined {
    if (!topic.startsWith(`${this.prefix}/`)) return undefined;
    return topic.slice(this.prefix.length + 1).split("/");
  }
}
