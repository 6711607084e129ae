import { type Static, Type } from "@sinclair/typebox";
import { CompactJws, Gen, Id, ProtocolVersion, PublicKeyB64 } from "./common.js";

export const RpcId = Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" });

/** keyserver/rpc/{term}/download: issue a stored credential to the caller's public key. */
export const DownloadRequest = Type.Object(
  {
    v: ProtocolVersion,
    id: RpcId,
    public_key: PublicKeyB64,
    tid: Type.Optional(Id),
    slot: Type.Optional(Id),
  },
  { additionalProperties: false },
);
export type DownloadRequest = Static<typeof DownloadRequest>;

export const DownloadResult = Type.Object(
  { credential: CompactJws, slot: Id, gen: Gen, tids: Type.Array(Id) },
  { additionalProperties: false },
);
export type DownloadResult = Static<typeof DownloadResult>;

export const RpcError = Type.Object(
  {
    code: Type.String({ pattern: "^[a-z][a-z0-9_]{0,63}$" }),
    message: Type.String({ maxLength: 512 }),
  },
  { additionalProperties: false },
);
export type RpcError = Static<typeof RpcError>;

/** terminals/{term}/rpc: every request gets exactly one reply with its id. */
export const RpcReply = Type.Object(
  {
    v: ProtocolVersion,
    id: RpcId,
    ok: Type.Boolean(),
    result: Type.Optional(Type.Unknown()),
    error: Type.Optional(RpcError),
  },
  { additionalProperties: false },
);
export type RpcReply = Static<typeof RpcReply>;

/** The smallest shape every request shares: enough to answer even a request whose op is unknown. */
export const RpcEnvelope = Type.Object({ v: ProtocolVersion, id: RpcId });
export type RpcEnvelope = Static<typeof RpcEnvelope>;

export const RPC_OPS = ["download"] as const;
export type RpcOp = (typeof RPC_OPS)[number];
