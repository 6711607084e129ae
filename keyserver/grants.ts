import { SparekeyError } from "../common/errors.js";
import { inSchedule } from "../common/schedule.js";
import type { GrantMode, GrantRow } from "../schemas/keyserver.js";
import type { SlotRecord } from "./store/store.js";

export interface GrantCandidate {
  grant: GrantRow;
  slot: SlotRecord;
}

export interface GrantQuery {
  tid: string;
  slot?: string;
  /** Only grants of this mode count; any mode when absent (remote unlock). */
  mode?: GrantMode;
  /** Unix ms. */
  now: number;
  /** The target's zone, in which schedules are read (UTC when it has none). */
  zone: string;
}

/**
 * The grants that let a user act on `tid` right now, checked in steps so that the refusal names the
 * step that failed for the closest candidate: no grant covers the target (`no_grant`), every one is
 * revoked (`grant_revoked`), every slot is revoked or suspended (`slot_revoked`), none is within its
 * nbf/exp and schedule (`grant_not_valid_now`). Never empty: it throws instead.
 */
export function usableGrants(all: readonly GrantCandidate[], q: GrantQuery): GrantCandidate[] {
  const covering = all.filter(
    (c) =>
      (q.mode === undefined || c.grant.mode === q.mode) &&
      (q.slot === undefined || c.grant.slot === q.slot) &&
      c.slot.tids.includes(q.tid),
  );
  const what = q.mode === undefined ? "grant" : `${q.mode} grant`;
  if (covering.length === 0) throw new SparekeyError("no_grant", `no ${what} covers target ${q.tid}`);
  const active = covering.filter((c) => c.grant.status === "active");
  if (active.length === 0)
    throw new SparekeyError("grant_revoked", `the ${what} for target ${q.tid} is revoked`);
  const live = active.filter((c) => c.slot.status === "active");
  const first = active[0];
  if (live.length === 0 || first === undefined)
    throw new SparekeyError(
      "slot_revoked",
      `slot ${first?.slot.slot ?? ""} is ${first?.slot.status ?? "revoked"}`,
    );
  const nowS = Math.floor(q.now / 1000);
  const valid = live.filter(
    (c) =>
      (c.grant.nbf === null || nowS >= c.grant.nbf) &&
      (c.grant.exp === null || nowS < c.grant.exp) &&
      (c.grant.schedule === null || inSchedule(c.grant.schedule, q.now, q.zone)),
  );
  if (valid.length === 0)
    throw new SparekeyError(
      "grant_not_valid_now",
      `the ${what} for target ${q.tid} is not valid at this time`,
    );
  // Uses and first-use expiry are counted by the target per stored credential: a relay frame or a
  // remote unlock would bypass them, so a use-limited grant opens only as the one stored key it issues.
  const countable = valid.filter((c) => c.grant.max_uses === null && c.grant.first_use_ttl_s === null);
  if (countable.length === 0)
    throw new SparekeyError(
      "no_grant",
      `the ${what} for target ${q.tid} is use-limited and opens only as a downloaded stored key`,
    );
  return countable;
}
