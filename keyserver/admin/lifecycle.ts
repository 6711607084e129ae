import type { GrantMode, GrantRow } from "../../schemas/keyserver.js";
import { assertId } from "../../schemas/topics.js";
import { decideGrantEdit, floorChange, type GrantPatch } from "../grants.js";
import type { AdminContext } from "./context.js";

/** A slot whose floor was raised past a disabled device's key. */
export interface RevokedHolding {
  slot: string;
  belowGen: number;
}

export interface DisableOptions {
  /**
   * Also raise the floor of every slot whose current key the device holds, so that key stops at the
   * targets too (everyone must download that slot again). Without it a stored key already on the
   * device keeps opening until it expires or is revoked: disabling stops logins, downloads, relay and
   * unlock, not a key the targets check offline.
   */
  revoke?: boolean;
}

/**
 * Raise the floor of each slot whose newest generation `serials` hold, one audited revocation each.
 * Older generations are below the floor already (every issue raises it).
 */
async function revokeHoldings(ctx: AdminContext, serials: ReadonlySet<string>): Promise<RevokedHolding[]> {
  const out: RevokedHolding[] = [];
  for (const h of await ctx.store.holdings()) {
    if (!serials.has(h.term)) continue;
    const slot = await ctx.store.getSlot(h.slot);
    if (slot?.status !== "active" || h.gen < slot.min_gen) continue;
    const belowGen = h.gen + 1;
    await ctx.store.revoke({ slot: h.slot, belowGen }, ctx.actor, floorChange);
    out.push({ slot: h.slot, belowGen });
  }
  return out;
}

/**
 * Disable a phone or a fob: the broker refuses its CONNECT (code 5), and download, relay and unlock
 * refuse it (terminal_disabled), so an open relay stops at its next frame.
 */
export async function disableTerminal(
  ctx: AdminContext,
  input: { serial: string } & DisableOptions,
): Promise<RevokedHolding[]> {
  assertId(input.serial, "serial");
  await ctx.store.setTerminalDisabled({ serial: input.serial, disabled: true }, ctx.actor);
  return input.revoke === true ? revokeHoldings(ctx, new Set([input.serial])) : [];
}

export async function enableTerminal(ctx: AdminContext, input: { serial: string }): Promise<void> {
  assertId(input.serial, "serial");
  await ctx.store.setTerminalDisabled({ serial: input.serial, disabled: false }, ctx.actor);
}

/** Remove a terminal that was never issued a key; one that was stays on record (disable it). */
export async function removeTerminal(ctx: AdminContext, input: { serial: string }): Promise<void> {
  assertId(input.serial, "serial");
  await ctx.store.removeTerminal(input.serial, ctx.actor);
}

/** Disable a user: every phone of the user is refused as if disabled itself (user_disabled). */
export async function disableUser(
  ctx: AdminContext,
  input: { user: string } & DisableOptions,
): Promise<RevokedHolding[]> {
  assertId(input.user, "user");
  await ctx.store.setUserDisabled({ user: input.user, disabled: true }, ctx.actor);
  if (input.revoke !== true) return [];
  const phones = (await ctx.store.listTerminals()).filter((t) => t.user === input.user);
  return revokeHoldings(ctx, new Set(phones.map((t) => t.serial)));
}

export async function enableUser(ctx: AdminContext, input: { user: string }): Promise<void> {
  assertId(input.user, "user");
  await ctx.store.setUserDisabled({ user: input.user, disabled: false }, ctx.actor);
}

/**
 * Remove a user that has no terminals and no active grant left (its ended grants go with it);
 * otherwise in_use, naming what is left. A user with history is disabled rather than removed.
 */
export async function removeUser(ctx: AdminContext, input: { user: string }): Promise<void> {
  assertId(input.user, "user");
  await ctx.store.removeUser(input.user, ctx.actor);
}

/**
 * Change a grant's limits (grants.ts `decideGrantEdit`): the next download, relay or unlock uses
 * them; a stored key already downloaded keeps the limits it carries.
 */
export async function editGrant(
  ctx: AdminContext,
  input: { user: string; slot: string; mode: GrantMode; patch: GrantPatch },
): Promise<GrantRow> {
  assertId(input.user, "user");
  assertId(input.slot, "slot");
  return ctx.store.editGrant(
    { user: input.user, slot: input.slot, mode: input.mode },
    ctx.actor,
    (current, downloaded) => decideGrantEdit(current, input.patch, downloaded),
  );
}
