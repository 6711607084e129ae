import { SparekeyError } from "../../common/errors.js";
import type { GrantMode } from "../../schemas/keyserver.js";
import { assertId } from "../../schemas/topics.js";
import { hashPassword, type ScryptParams } from "../passwords.js";
import type { NewGrant } from "../store/store.js";
import type { AdminContext } from "./context.js";

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

export async function addUser(
  ctx: AdminContext,
  input: { user: string; password: string; scrypt?: ScryptParams },
): Promise<void> {
  assertId(input.user, "user");
  if (input.password.length < MIN_PASSWORD_LENGTH || input.password.length > MAX_PASSWORD_LENGTH)
    throw new SparekeyError(
      "bad_request",
      `a password has ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters`,
    );
  const passwordHash = await hashPassword(input.password, input.scrypt);
  await ctx.store.addUser({ id: input.user, passwordHash }, ctx.actor);
}

export async function addTerminal(ctx: AdminContext, input: { serial: string; user: string }): Promise<void> {
  assertId(input.serial, "serial");
  assertId(input.user, "user");
  await ctx.store.addTerminal(input, ctx.actor);
}

export async function addGrant(ctx: AdminContext, input: NewGrant): Promise<void> {
  assertId(input.slot, "slot");
  assertId(input.user, "user");
  if (input.nbf !== undefined && input.exp !== undefined && input.exp <= input.nbf)
    throw new SparekeyError("bad_request", "exp must be after nbf");
  if (input.mode === "relay" && (input.max_uses !== undefined || input.first_use_ttl_s !== undefined))
    throw new SparekeyError(
      "bad_request",
      "--max-uses and --first-use-ttl are counted by the target per stored key: give them to a stored grant",
    );
  await ctx.store.addGrant(input, ctx.actor);
}

/** Revoke a user's grant: relay and unlock stop at once; credentials already issued run to their own limits. */
export async function revokeGrant(
  ctx: AdminContext,
  input: { slot: string; user: string; mode: GrantMode },
): Promise<void> {
  assertId(input.slot, "slot");
  assertId(input.user, "user");
  await ctx.store.revokeGrant(input, ctx.actor);
}
