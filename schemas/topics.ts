import type { Static, TSchema } from "@sinclair/typebox";
import { SparekeyError } from "../common/errors.js";
import { CompactJws, ID_REGEX } from "./common.js";
import { HaCommand, HaDiscoveryConfig } from "./homeassistant.js";
import { Challenge, KeyserverStatus, LinkStatus, TargetEvent, TargetState, Verdict } from "./messages.js";
import { OperatorReply } from "./operators.js";
import { RpcEnvelope, RpcReply } from "./rpc.js";
import { TokenType, type TokenTypeValue } from "./tokens.js";

export const DEFAULT_PREFIX = "sparekey/v1";
/** Home Assistant's own default discovery prefix. */
export const DEFAULT_DISCOVERY_PREFIX = "homeassistant";
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

/**
 * Who a connected client is, decided by the broker at CONNECT. A new role is one more name here; it
 * gets no topic until an entry of TOPICS grants it one.
 */
export const ROLES = ["terminal", "target", "keyserver", "dashboard", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** How a payload travels: signed token (string), JSON document or a bare word (Home Assistant's commands). */
export type Encoding = "jws" | "json" | "text";

/** A role's right to publish on a topic. */
export interface PublishGrant {
  /** The `{param}` level that must be the caller's own client id (Mosquitto's %c); others take any id. */
  readonly own?: string;
}

/** A role's right to subscribe to a topic. */
export interface SubscribeGrant extends PublishGrant {
  /** `+` may stand in the other `{param}` levels (the key server watching every target); `#` never. */
  readonly plus?: true;
}

export interface TopicSpec {
  /** Pattern relative to the prefix; `{tid}`, `{term}`, `{op}` are single levels. */
  readonly pattern: string;
  readonly schema: TSchema;
  readonly encoding: Encoding;
  /** JWS topics: the token types the payload may be. */
  readonly tokens?: readonly TokenTypeValue[];
  readonly qos: 0 | 1;
  /** Published retained. Where false, the broker refuses a retained publish (it would replay forever). */
  readonly retain: boolean;
  readonly description: string;
  /** The roles that may publish, and under which condition; a role not listed may not. */
  readonly publish: Readonly<Partial<Record<Role, PublishGrant>>>;
  readonly subscribe: Readonly<Partial<Record<Role, SubscribeGrant>>>;
}

/**
 * The protocol in one table: the topic builders, matchers and `publish`, the broker's ACL
 * (broker/acl.ts) and the AsyncAPI document (schemas/asyncapi.ts) are all derived from it.
 */
export const TOPICS = {
  challenge: {
    pattern: "targets/{tid}/challenge",
    schema: Challenge,
    encoding: "json",
    qos: 0,
    retain: true,
    description: "target -> terminals: a fresh nonce every period",
    publish: { target: { own: "tid" } },
    subscribe: { terminal: {}, keyserver: { plus: true } },
  },
  frames: {
    pattern: "targets/{tid}/frames/{term}",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.frame, TokenType.relay],
    qos: 0,
    retain: false,
    description:
      "terminal -> target: sparekey-frame+jws or sparekey-relay+jws; never retained; {term} is the sender's own id and must equal the token's term",
    // {term} is vouched for by the broker: the target keys its per-terminal defences on it.
    publish: { terminal: { own: "term" } },
    subscribe: { target: { own: "tid", plus: true } },
  },
  state: {
    pattern: "targets/{tid}/state",
    schema: TargetState,
    encoding: "json",
    qos: 1,
    retain: true,
    description: "target -> anyone allowed: available / unavailable / offline (will)",
    publish: { target: { own: "tid" } },
    // A dashboard's {tid} levels are further bound to the targets its account lists (broker/acl.ts).
    subscribe: { terminal: {}, keyserver: { plus: true }, dashboard: { plus: true }, admin: { plus: true } },
  },
  events: {
    pattern: "targets/{tid}/events",
    schema: TargetEvent,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "target -> key server, dashboards: decisions with machine-readable reasons",
    publish: { target: { own: "tid" } },
    subscribe: { keyserver: { plus: true }, dashboard: { plus: true }, admin: { plus: true } },
  },
  registry: {
    pattern: "targets/{tid}/registry",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.registry],
    qos: 1,
    retain: true,
    description: "key server -> target: sparekey-registry+jws snapshot of permitted slots",
    publish: { keyserver: {} },
    // A terminal keeps the registries of the targets it holds keys for, to carry them (`carried`).
    subscribe: { target: { own: "tid" }, terminal: {} },
  },
  unlock: {
    pattern: "targets/{tid}/unlock",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.unlock],
    qos: 1,
    retain: false,
    description: "key server -> target: sparekey-unlock+jws one-time command",
    publish: { keyserver: {} },
    subscribe: { target: { own: "tid" } },
  },
  revocations: {
    pattern: "fleet/revocations",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.revocations],
    qos: 1,
    retain: true,
    description: "key server -> all targets: sparekey-revocations+jws",
    publish: { keyserver: {} },
    subscribe: { target: {}, terminal: {} },
  },
  carried: {
    pattern: "targets/{tid}/carried/{term}",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.registry, TokenType.revocations],
    qos: 1,
    retain: false,
    description:
      "terminal -> target: a registry or fleet revocation list it fetched while online, for a target cut off from the key server; never retained",
    publish: { terminal: { own: "term" } },
    subscribe: { target: { own: "tid", plus: true } },
  },
  terminalStatus: {
    pattern: "terminals/{term}/status",
    schema: LinkStatus,
    encoding: "json",
    qos: 1,
    retain: true,
    description: "terminal (and its will): online / offline with a rising epoch",
    publish: { terminal: { own: "term" } },
    // A target follows the terminals it saw (sessions, relay frames; bounded), one concrete topic each.
    subscribe: { target: {}, keyserver: { plus: true }, dashboard: { plus: true }, admin: { plus: true } },
  },
  keyserverStatus: {
    pattern: "keyserver/status",
    schema: KeyserverStatus,
    encoding: "json",
    qos: 1,
    retain: true,
    description:
      "key server (and its will): online / offline with a rising epoch and its active issuer key id (`kid`)",
    publish: { keyserver: {} },
    subscribe: { terminal: {}, target: {}, keyserver: {}, dashboard: {}, admin: {} },
  },
  rpcRequest: {
    pattern: "keyserver/rpc/{term}/{op}",
    schema: RpcEnvelope,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "terminal -> key server: request {v, id, ...}; the caller is the {term} level",
    publish: { terminal: { own: "term" } },
    subscribe: { keyserver: { plus: true } },
  },
  rpcReply: {
    pattern: "terminals/{term}/rpc",
    schema: RpcReply,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "key server -> terminal: reply {v, id, ok, result?, error?}",
    publish: { keyserver: {} },
    subscribe: { terminal: { own: "term" } },
  },
  verdicts: {
    pattern: "terminals/{term}/verdicts",
    schema: Verdict,
    encoding: "json",
    qos: 0,
    retain: false,
    description:
      "target -> one terminal: why its own frames were refused or its session ended; coalesced to one per period; never retained",
    // Any {term}: a target learns the terminal from the frames topic's {term}, which the broker vouches
    // for, but a grant can only tie a level to the caller's own id, and the caller here is the target.
    publish: { target: {} },
    subscribe: { terminal: { own: "term" } },
  },
  operatorCommands: {
    pattern: "operators/{op_id}/commands",
    schema: CompactJws,
    encoding: "jws",
    tokens: [TokenType.command],
    qos: 1,
    retain: false,
    description:
      "admin -> key server: sparekey-command+jws signed by the operator's bound key; the operator is the {op_id} level",
    // {op_id} is vouched for by the broker: the key server checks the token against that account's key.
    publish: { admin: { own: "op_id" } },
    subscribe: { keyserver: { plus: true } },
  },
  operatorReplies: {
    pattern: "operators/{op_id}/replies",
    schema: OperatorReply,
    encoding: "json",
    qos: 1,
    retain: false,
    description: "key server -> that operator only: reply {v, jti, ok, result?, error?}",
    publish: { keyserver: {} },
    subscribe: { admin: { own: "op_id" } },
  },
  haCommand: {
    pattern: "ha/{account}/{tid}/command",
    schema: HaCommand,
    encoding: "text",
    qos: 1,
    retain: false,
    description:
      "Home Assistant -> key server: UNLOCK (a one-time unlock on behalf of the account's user) or LOCK; {account} is the publisher's own dashboard account; never retained",
    // A dashboard's own id is its account (its client id is a free choice), and its {tid} levels are
    // bound to the targets its account lists: the key server trusts both levels.
    publish: { dashboard: { own: "account" } },
    subscribe: { keyserver: { plus: true } },
  },
} as const satisfies Record<string, TopicSpec>;

/**
 * Topics outside the prefix, under Home Assistant's discovery prefix (where Home Assistant looks):
 * the same spec shape, and the broker's ACL is built from both tables. Home Assistant subscribes to
 * `<discovery prefix>/+/+/+/config`, so a dashboard may put `+` in every level (in `{tid}` only when
 * its account watches every target).
 */
export const DISCOVERY_TOPICS = {
  haDiscovery: {
    pattern: "{component}/{node}/{tid}/config",
    schema: HaDiscoveryConfig,
    encoding: "json",
    qos: 1,
    retain: true,
    description:
      "key server -> Home Assistant: MQTT discovery of a target's lock and last-refusal sensor ({node} is sparekey); an empty retained payload removes the entity",
    publish: { keyserver: {} },
    subscribe: { dashboard: { plus: true } },
  },
} as const satisfies Record<string, TopicSpec>;

type Table = typeof TOPICS;
export type TopicName = keyof Table;
export const TOPIC_NAMES = Object.keys(TOPICS) as TopicName[];

type ParamNames<P extends string> = P extends `${string}{${infer N}}${infer Rest}`
  ? N | ParamNames<Rest>
  : never;
/** The `{param}` levels of a topic, by name: `{tid: "door-1"}`. In a filter a value may be `+`. */
export type TopicParams<N extends TopicName> = { readonly [K in ParamNames<Table[N]["pattern"]>]: string };
/** What a topic carries: the Static type of its schema (a token string for JWS topics). */
export type TopicPayload<N extends TopicName> = Static<Table[N]["schema"]>;
/** A topic recognised by `match`, with its levels by name (each a valid id). */
export type TopicMatch = {
  [N in TopicName]: { readonly name: N; readonly params: TopicParams<N> };
}[TopicName];

/** One level of a pattern: a literal, or a `{param}` that takes one id. */
export type PatternLevel = string | { readonly param: string };

/** The levels of a pattern; the one place that reads the `{param}` syntax. */
export function patternLevels(pattern: string): readonly PatternLevel[] {
  return pattern.split("/").map((level) => {
    const param = /^\{(\w+)\}$/.exec(level)?.[1];
    return param === undefined ? level : { param };
  });
}

const LEVELS: Readonly<Record<TopicName, readonly PatternLevel[]>> = Object.fromEntries(
  TOPIC_NAMES.map((name) => [name, patternLevels(TOPICS[name].pattern)]),
) as Record<TopicName, readonly PatternLevel[]>;

/** Levels under the prefix of the deepest topic in the table. */
export const DEEPEST_TOPIC_LEVELS = Math.max(...Object.values(LEVELS).map((levels) => levels.length));

/** A message ready for the wire (also the shape of an MQTT will). */
export interface OutgoingMessage {
  readonly topic: string;
  readonly payload: string;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/** What `publish` needs of a client: MQTT.js's `publishAsync`, or the terminal's message bus. */
export interface Publisher {
  publishAsync(topic: string, payload: string, opts: { qos: 0 | 1; retain: boolean }): Promise<unknown>;
}

/** Topic builders, filters and matchers under one prefix; every id is checked before it becomes a level. */
export class Topics {
  readonly prefix: string;
  readonly discoveryPrefix: string;
  constructor(prefix: string = DEFAULT_PREFIX, discoveryPrefix: string = DEFAULT_DISCOVERY_PREFIX) {
    this.prefix = assertPrefix(prefix);
    this.discoveryPrefix = assertPrefix(discoveryPrefix);
  }

  /** The Home Assistant discovery topic of a target's entity of `component` (DISCOVERY_TOPICS). */
  discovery(component: "lock" | "sensor", tid: string): string {
    return `${this.discoveryPrefix}/${component}/${DISCOVERY_NODE}/${assertId(tid, "tid")}/config`;
  }

  /** The levels after the discovery prefix, or undefined when the topic is outside it. */
  discoveryRelative(topic: string): string[] | undefined {
    if (!topic.startsWith(`${this.discoveryPrefix}/`)) return undefined;
    return topic.slice(this.discoveryPrefix.length + 1).split("/");
  }

  /** The concrete topic of `name`; throws invalid_id for a param that is not an id. */
  build<N extends TopicName>(name: N, params: TopicParams<N>): string {
    return this.fill(name, params, false);
  }

  /** A subscription filter of `name`: a param may be `+`, anything else must be an id. */
  filter<N extends TopicName>(name: N, params: TopicParams<N>): string {
    return this.fill(name, params, true);
  }

  /** Which topic this is, with its params; undefined outside the prefix or table, or at a non-id level. */
  match(topic: string): TopicMatch | undefined {
    const levels = this.relative(topic);
    if (!levels) return undefined;
    for (const name of TOPIC_NAMES) {
      const params = matchLevels(LEVELS[name], levels);
      if (params) return { name, params } as TopicMatch;
    }
    return undefined;
  }

  /** The topic, encoded payload, QoS and retain flag of `name`, all from the table. */
  message<N extends TopicName>(name: N, params: TopicParams<N>, payload: TopicPayload<N>): OutgoingMessage {
    const spec: TopicSpec = TOPICS[name];
    return {
      topic: this.build(name, params),
      payload: encode(spec, payload),
      qos: spec.qos,
      retain: spec.retain,
    };
  }

  async publish<N extends TopicName>(
    client: Publisher,
    name: N,
    params: TopicParams<N>,
    payload: TopicPayload<N>,
  ): Promise<void> {
    const m = this.message(name, params, payload);
    await client.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain });
  }

  challenge(tid: string): string {
    return this.build("challenge", { tid });
  }
  frames(tid: string, term: string): string {
    return this.build("frames", { tid, term });
  }
  state(tid: string): string {
    return this.build("state", { tid });
  }
  events(tid: string): string {
    return this.build("events", { tid });
  }
  registry(tid: string): string {
    return this.build("registry", { tid });
  }
  unlock(tid: string): string {
    return this.build("unlock", { tid });
  }
  revocations(): string {
    return this.build("revocations", {});
  }
  carried(tid: string, term: string): string {
    return this.build("carried", { tid, term });
  }
  terminalStatus(term: string): string {
    return this.build("terminalStatus", { term });
  }
  keyserverStatus(): string {
    return this.build("keyserverStatus", {});
  }
  rpcRequest(term: string, op: string): string {
    return this.build("rpcRequest", { term, op });
  }
  rpcReply(term: string): string {
    return this.build("rpcReply", { term });
  }
  verdicts(term: string): string {
    return this.build("verdicts", { term });
  }
  operatorCommands(opId: string): string {
    return this.build("operatorCommands", { op_id: opId });
  }
  operatorReplies(opId: string): string {
    return this.build("operatorReplies", { op_id: opId });
  }
  haCommand(account: string, tid: string): string {
    return this.build("haCommand", { account, tid });
  }

  /** The levels after the prefix, or undefined when the topic is outside it. */
  relative(topic: string): string[] | undefined {
    if (!topic.startsWith(`${this.prefix}/`)) return undefined;
    return topic.slice(this.prefix.length + 1).split("/");
  }

  private fill(name: TopicName, params: Readonly<Record<string, string>>, wildcard: boolean): string {
    const levels = LEVELS[name].map((level) => {
      if (typeof level === "string") return level;
      const value = params[level.param];
      return wildcard && value === "+" ? value : assertId(value, level.param);
    });
    return `${this.prefix}/${levels.join("/")}`;
  }
}

function matchLevels(
  pattern: readonly PatternLevel[],
  levels: readonly string[],
): Record<string, string> | undefined {
  if (pattern.length !== levels.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const spec = pattern[i];
    const level = levels[i];
    if (spec === undefined || level === undefined) return undefined;
    if (typeof spec === "string") {
      if (level !== spec) return undefined;
    } else if (isId(level)) params[spec.param] = level;
    else return undefined;
  }
  return params;
}

/** The `{node}` level of every discovery topic sparekey publishes. */
export const DISCOVERY_NODE = "sparekey";

function encode(spec: TopicSpec, payload: unknown): string {
  if (spec.encoding === "json") return JSON.stringify(payload);
  if (typeof payload !== "string")
    throw new SparekeyError("internal_error", "a JWS or text topic carries a string");
  return payload;
}
