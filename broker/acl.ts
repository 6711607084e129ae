import { isId, type Topics } from "../schemas/topics.js";
import type { Principal, Role } from "./principal.js";

/**
 * Per-role topic ACL (DESIGN §3). Pure functions over the levels after the prefix; the broker hook
 * calls them once per PUBLISH / SUBSCRIBE, so matching is a split and a few string compares: the
 * tables are built once at load, nothing is compiled or allocated per call beyond the split.
 */

/** A level of a rule: a literal, or one of the two placeholders below. */
type LevelSpec = string;
/** Any valid id (`^[A-Za-z0-9_-]{1,64}$`); in a subscribe rule with `plus`, also a bare `+`. */
const ANY_ID = "{id}";
/** Exactly the caller's own id: identity travels in the topic, so a client may speak only as itself. */
const OWN_ID = "{own}";

interface Rule {
  readonly levels: readonly LevelSpec[];
  /** Publish only: "never" refuses a retained message (a retained frame would replay forever). */
  readonly retain?: "never";
  /** Subscribe only: `+` may stand in an {id} level (the key server watching every target). */
  readonly plus?: boolean;
}

interface RoleTable {
  readonly publish: readonly Rule[];
  readonly subscribe: readonly Rule[];
}

const r = (pattern: string, opts: Omit<Rule, "levels"> = {}): Rule => ({
  levels: pattern.split("/"),
  ...opts,
});

const TABLES: Readonly<Record<Role, RoleTable>> = {
  terminal: {
    publish: [
      r("targets/{id}/frames", { retain: "never" }),
      r("terminals/{own}/status"),
      r("keyserver/rpc/{own}/{id}", { retain: "never" }),
    ],
    // Concrete filters only: a terminal follows the one target it is using (DESIGN §4 fan-out).
    subscribe: [
      r("targets/{id}/challenge"),
      r("targets/{id}/state"),
      r("terminals/{own}/rpc"),
      r("keyserver/status"),
    ],
  },
  target: {
    publish: [
      r("targets/{own}/challenge"),
      r("targets/{own}/state"),
      r("targets/{own}/events", { retain: "never" }),
    ],
    subscribe: [
      r("targets/{own}/frames"),
      r("targets/{own}/registry"),
      r("targets/{own}/unlock"),
      r("fleet/revocations"),
      r("keyserver/status"),
      // Only the terminals it holds a session with, one concrete topic each.
      r("terminals/{id}/status"),
    ],
  },
  keyserver: {
    publish: [
      r("targets/{id}/registry"),
      r("targets/{id}/unlock", { retain: "never" }),
      r("fleet/revocations"),
      r("keyserver/status"),
      r("terminals/{id}/rpc", { retain: "never" }),
    ],
    subscribe: [
      r("keyserver/rpc/{id}/{id}", { plus: true }),
      r("targets/{id}/challenge", { plus: true }),
      r("targets/{id}/events", { plus: true }),
      r("targets/{id}/state", { plus: true }),
      r("terminals/{id}/status", { plus: true }),
      r("keyserver/status"),
    ],
  },
};

function levelMatches(spec: LevelSpec, level: string, ownId: string, plus: boolean): boolean {
  if (spec === ANY_ID) return isId(level) || (plus && level === "+");
  if (spec === OWN_ID) return level === ownId;
  return level === spec;
}

function matches(rule: Rule, levels: readonly string[], ownId: string): boolean {
  const specs = rule.levels;
  if (specs.length !== levels.length) return false;
  const plus = rule.plus === true;
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i];
    const level = levels[i];
    if (spec === undefined || level === undefined || !levelMatches(spec, level, ownId, plus)) return false;
  }
  return true;
}

function tableFor(principal: Principal): RoleTable | undefined {
  // An id that is not a valid level (a `+`, `#`, `/`) would turn {own} into a wildcard: refuse it all.
  if (!isId(principal.id)) return undefined;
  return Object.hasOwn(TABLES, principal.role) ? TABLES[principal.role] : undefined;
}

/** May `principal` publish on `topic` (with this retain flag)? Anything not listed is refused. */
export function authorizePublish(
  principal: Principal,
  topic: string,
  retain: boolean,
  topics: Topics,
): boolean {
  const table = tableFor(principal);
  if (!table) return false;
  const levels = topics.relative(topic);
  if (!levels) return false;
  for (const rule of table.publish) {
    if (matches(rule, levels, principal.id)) return !(retain && rule.retain === "never");
  }
  return false;
}

/** May `principal` subscribe to `filter`? `#` is never allowed, `+` only where its role's rule says. */
export function authorizeSubscribe(principal: Principal, filter: string, topics: Topics): boolean {
  const table = tableFor(principal);
  if (!table) return false;
  const levels = topics.relative(filter);
  if (!levels) return false;
  for (const rule of table.subscribe) {
    if (matches(rule, levels, principal.id)) return true;
  }
  return false;
}
