import { Type } from "@sinclair/typebox";

/** Ids of targets, terminals and slots: safe in a topic level (no `+`, `#`, `/`) and in a file name. */
export const ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$";
export const ID_REGEX = new RegExp(ID_PATTERN);
export const Id = Type.String({ pattern: ID_PATTERN, description: "target, terminal or slot id" });

/** base64url without padding; 16 random bytes -> 22 characters. */
export const Nonce = Type.String({
  pattern: "^[A-Za-z0-9_-]{22}$",
  description: "16 random bytes, base64url",
});
/** Raw 32-byte Ed25519 public key, base64url without padding (43 characters). */
export const PublicKeyB64 = Type.String({
  pattern: "^[A-Za-z0-9_-]{43}$",
  description: "raw Ed25519 public key",
});
/** Key id: base64url SHA-256 JWK thumbprint (RFC 7638), 43 characters. */
export const Kid = Type.String({ pattern: "^[A-Za-z0-9_-]{43}$" });
/** Unix seconds (JWT NumericDate). */
export const UnixSeconds = Type.Integer({ minimum: 0, maximum: 253402300799 });
/** Unix milliseconds, used in plain (unsigned) messages. */
export const UnixMillis = Type.Integer({ minimum: 0, maximum: 253402300799000 });
export const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const Gen = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });
export const Version = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const ProtocolVersion = Type.Literal(1);
/** A compact JWS: three base64url segments. Length bound keeps a hostile token from costing much. */
export const CompactJws = Type.String({
  pattern: "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
  maxLength: 8192,
});
