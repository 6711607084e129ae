import { type Static, Type } from "@sinclair/typebox";
import { Id, ProtocolVersion } from "./common.js";
import { RpcError } from "./rpc.js";

/** A command's id (`jti`), as in the token. */
export const CommandId = Type.String({ pattern: "^[A-Za-z0-9_-]{16,64}$" });

/** operators/{op_id}/replies: one reply per command whose jti could be read. */
export const OperatorReply = Type.Object(
  {
    v: ProtocolVersion,
    jti: CommandId,
    ok: Type.Boolean(),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(RpcError),
  },
  { additionalProperties: false },
);
export type OperatorReply = Static<typeof OperatorReply>;

/**
 * The operator's own file (`~/.sparekey/operator/operator.json`, mode 0600): the command key's seed,
 * the account it is bound to and how to reach the gateway. The password is never stored.
 */
export const OperatorFile = Type.Object(
  {
    v: ProtocolVersion,
    op_id: Id,
    broker_url: Type.String({ pattern: "^(mqtts?|wss?)://", maxLength: 2048 }),
    seed: Type.String({ pattern: "^[A-Za-z0-9_-]{43}$" }),
    ca_pem: Type.Optional(Type.String({ maxLength: 65_536 })),
  },
  { additionalProperties: false },
);
export type OperatorFile = Static<typeof OperatorFile>;
