import type { TSchema } from "@sinclair/typebox";
import {
  DownloadRequest,
  DownloadResult,
  RelayRequest,
  RelayResult,
  RPC_OPS,
  RpcError,
  UnlockRequest,
  UnlockResult,
} from "./rpc.js";
import { TokenPayloadSchemas, TokenType, type TokenTypeValue } from "./tokens.js";
import { assertPrefix, DEFAULT_PREFIX, TOPICS, type TopicName } from "./topics.js";

/**
 * The AsyncAPI 3.0 document of the protocol, generated from the TOPICS table and the TypeBox schemas
 * so it cannot drift from the code. `npx tsx schemas/asyncapi-cli.ts` writes docs/asyncapi.json; a unit
 * test fails when the committed file differs from `buildAsyncApi()`.
 */

interface Roles {
  /** Who publishes on the topic. */
  readonly from: string;
  /** Who subscribes to it. */
  readonly to: string;
  /** For JWS topics: the token types the payload may be. */
  readonly tokens?: readonly TokenTypeValue[];
}

const ROLES: Record<TopicName, Roles> = {
  challenge: { from: "the target", to: "terminals using that target" },
  frames: { from: "a terminal (or fob)", to: "the target", tokens: [TokenType.frame, TokenType.relay] },
  state: { from: "the target (its will publishes offline)", to: "the key server, terminals, dashboards" },
  events: { from: "the target", to: "the key server, dashboards" },
  registry: { from: "the key server", to: "the target", tokens: [TokenType.registry] },
  unlock: { from: "the key server", to: "the target", tokens: [TokenType.unlock] },
  revocations: { from: "the key server", to: "every target", tokens: [TokenType.revocations] },
  terminalStatus: {
    from: "the terminal (its will publishes offline)",
    to: "the key server, dashboards, targets with an open session held by it",
  },
  keyserverStatus: { from: "the key server (its will publishes offline)", to: "targets, relaying terminals" },
  rpcRequest: {
    from: "a terminal (the {term} level is the caller, vouched for by the broker ACL)",
    to: "the key server",
  },
  rpcReply: { from: "the key server", to: "the terminal {term} only" },
};

const PARAMETERS = {
  tid: { description: "target id, ^[A-Za-z0-9_-]{1,64}$" },
  term: { description: "terminal id (its client id), ^[A-Za-z0-9_-]{1,64}$" },
  op: { description: "RPC operation", enum: [...RPC_OPS] },
} as const;
type ParameterName = keyof typeof PARAMETERS;

/** Names of token payload schemas in components.schemas, by typ. */
const TOKEN_SCHEMA_NAMES: Record<TokenTypeValue, string> = {
  [TokenType.credential]: "CredentialPayload",
  [TokenType.frame]: "FramePayload",
  [TokenType.relay]: "RelayPayload",
  [TokenType.registry]: "RegistryPayload",
  [TokenType.revocations]: "RevocationsPayload",
  [TokenType.unlock]: "UnlockPayload",
};

const MQTT_BINDING_VERSION = "0.2.0";

/** The plain JSON Schema of a TypeBox schema: the round trip drops TypeBox's symbol keys. */
function jsonSchema(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(schema)) as unknown;
}

function parametersOf(pattern: string): Record<string, unknown> | undefined {
  const names = [...pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as ParameterName);
  if (names.length === 0) return undefined;
  return Object.fromEntries(names.map((n) => [n, PARAMETERS[n]]));
}

export interface AsyncApiDocument {
  readonly asyncapi: "3.0.0";
  readonly info: { title: string; version: string; description: string };
  readonly defaultContentType: string;
  readonly channels: Record<string, unknown>;
  readonly operations: Record<string, unknown>;
  readonly components: { messages: Record<string, unknown>; schemas: Record<string, unknown> };
}

export function buildAsyncApi(prefix: string = DEFAULT_PREFIX): AsyncApiDocument {
  assertPrefix(prefix);
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};

  for (const [name, spec] of Object.entries(TOPICS) as [TopicName, (typeof TOPICS)[TopicName]][]) {
    const roles = ROLES[name];
    const parameters = parametersOf(spec.pattern);
    const tokens = roles.tokens ?? [];
    const carries =
      tokens.length > 0
        ? ` Payload: a compact JWS of typ ${tokens.join(" or ")} (decoded payload: ${tokens
            .map((t) => `#/components/schemas/${TOKEN_SCHEMA_NAMES[t]}`)
            .join(", ")}).`
        : "";
    channels[name] = {
      address: `${prefix}/${spec.pattern}`,
      description: `${spec.description}. QoS ${spec.qos}, ${spec.retain ? "retained" : "not retained"}.`,
      ...(parameters ? { parameters } : {}),
      messages: { [name]: { $ref: `#/components/messages/${name}` } },
    };
    messages[name] = {
      name,
      contentType: spec.encoding === "jws" ? "application/jose" : "application/json",
      description: `${spec.description}.${carries}`,
      payload: jsonSchema(spec.schema),
      ...(tokens.length > 0 ? { "x-sparekey-token-types": [...tokens] } : {}),
    };
    const bindings = { mqtt: { qos: spec.qos, retain: spec.retain, bindingVersion: MQTT_BINDING_VERSION } };
    const common = {
      channel: { $ref: `#/channels/${name}` },
      messages: [{ $ref: `#/channels/${name}/messages/${name}` }],
      bindings,
    };
    operations[`${name}_send`] = {
      action: "send",
      ...common,
      description: `Sent by ${roles.from}.`,
      ...(name === "rpcRequest" ? { reply: { channel: { $ref: "#/channels/rpcReply" } } } : {}),
    };
    operations[`${name}_receive`] = { action: "receive", ...common, description: `Received by ${roles.to}.` };
  }

  const schemas: Record<string, unknown> = {};
  for (const typ of Object.values(TokenType)) {
    schemas[TOKEN_SCHEMA_NAMES[typ]] = {
      ...(jsonSchema(TokenPayloadSchemas[typ]) as object),
      description: `Payload of a ${typ} token; times are Unix seconds.`,
    };
  }
  schemas.DownloadRequest = jsonSchema(DownloadRequest);
  schemas.DownloadResult = jsonSchema(DownloadResult);
  schemas.RelayRequest = jsonSchema(RelayRequest);
  schemas.RelayResult = jsonSchema(RelayResult);
  schemas.UnlockRequest = jsonSchema(UnlockRequest);
  schemas.UnlockResult = jsonSchema(UnlockResult);
  schemas.RpcError = jsonSchema(RpcError);

  return {
    asyncapi: "3.0.0",
    info: {
      title: "sparekey",
      version: "1.0.0",
      description:
        "A phone as a spare electronic key: key server, terminals and targets over MQTT 3.1.1. " +
        "Signed messages are JWS compact tokens (EdDSA/Ed25519) sent as the whole MQTT payload; " +
        "times inside tokens are Unix seconds, ts/since in plain messages are Unix milliseconds. " +
        "See docs/PROTOCOL.md.",
    },
    defaultContentType: "application/json",
    channels,
    operations,
    components: { messages, schemas },
  };
}
