import { assertId } from "../../schemas/topics.js";
import type { ScryptParams } from "../passwords.js";
import { passwordHash } from "./accounts.js";
import type { AdminContext } from "./context.js";

/**
 * An operator (admin account) is made only on the key server's own box, with the password it connects
 * to the broker with; its first remote login binds its command key (trust on first use, audited).
 */
export async function addOperator(
  ctx: AdminContext,
  input: { id: string; password: string; scrypt?: ScryptParams },
): Promise<void> {
  assertId(input.id, "operator");
  await ctx.store.addOperator({ id: input.id, passwordHash: await passwordHash(input) }, ctx.actor);
}

/** Forget an operator's bound key (a lost or replaced laptop): its next remote login binds a new one. */
export async function unbindOperator(ctx: AdminContext, input: { id: string }): Promise<void> {
  assertId(input.id, "operator");
  await ctx.store.unbindOperatorKey(input.id, ctx.actor);
}

export async function setOperatorDisabled(
  ctx: AdminContext,
  input: { id: string; disabled: boolean },
): Promise<void> {
  assertId(input.id, "operator");
  await ctx.store.setOperatorDisabled(input, ctx.actor);
}
