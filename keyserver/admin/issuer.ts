import { SparekeyError } from "../../common/errors.js";
import { Kid } from "../../schemas/common.js";
import { validator } from "../../schemas/validate.js";
import type { IssuerKeyInfo } from "../issuer.js";
import type { AdminContext } from "./context.js";

export interface IssuerChange {
  kid: string;
  /** Targets whose registry got a new version (the running key server publishes them). */
  targets: number;
}

/** What `admin issuer rotate` and `retire` audit when they are refused (nothing changed). */
async function refused<T>(ctx: AdminContext, op: string, subject: string, fn: () => T): Promise<T> {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SparekeyError)
      await ctx.store.recordAudit({ actor: ctx.actor, op, subject, outcome: err.code });
    throw err;
  }
}

/**
 * A new issuer key, active for every new signature; the old keys stay trusted. The key file is written
 * first (a key that signs must exist on disk), then every registry gets a new version, audited in the
 * same transaction: the running key server publishes them with the new `issuers`, so targets learn the
 * key. A crash between the two leaves the key active and unannounced until the key server's next
 * republish (on every start and reconnection), which lists it too.
 */
export async function rotateIssuer(ctx: AdminContext): Promise<IssuerChange> {
  const previous = ctx.issuer.signingKey.kid;
  const key = await refused(ctx, "issuer_rotate", previous, () =>
    ctx.issuer.rotate(Math.floor(ctx.now() / 1000)),
  );
  const targets = await ctx.store.bumpAllRegistries({
    actor: ctx.actor,
    op: "issuer_rotate",
    subject: key.kid,
    detail: { previous },
  });
  return { kid: key.kid, targets };
}

/**
 * Stop trusting an old issuer key: it leaves the registries (targets that learned it from one stop
 * trusting it when they apply the next) and the configs of targets paired from now on. The active key
 * is refused. Credentials it signed are refused `unknown_issuer` wherever it is no longer trusted.
 */
export async function retireIssuer(ctx: AdminContext, kid: string): Promise<IssuerChange> {
  if (!validator(Kid, "kid").is(kid)) throw new SparekeyError("bad_request", "--kid is not a key id");
  await refused(ctx, "issuer_retire", kid, () => ctx.issuer.retire(kid, Math.floor(ctx.now() / 1000)));
  const targets = await ctx.store.bumpAllRegistries({ actor: ctx.actor, op: "issuer_retire", subject: kid });
  return { kid, targets };
}

export function listIssuers(ctx: AdminContext): IssuerKeyInfo[] {
  ctx.issuer.refresh();
  return ctx.issuer.list();
}
