import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "../../common/log.js";
import type { Issuer } from "../issuer.js";
import type { KeyStore } from "../store/store.js";

export interface OpContext {
  readonly store: KeyStore;
  readonly issuer: Issuer;
  readonly logger: Logger;
  /** Unix milliseconds. */
  readonly now: () => number;
}

/** One RPC op: its request schema and its handler. `caller` comes from the topic, never the payload. */
export interface OpDef<S extends TSchema = TSchema> {
  readonly schema: S;
  handle(ctx: OpContext, caller: string, request: Static<S>): Promise<unknown>;
}

export function defineOp<S extends TSchema>(def: OpDef<S>): OpDef<S> {
  return def;
}
