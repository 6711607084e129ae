import {
  DISCOVERY_TOPICS,
  isId,
  type PatternLevel,
  patternLevels,
  ROLES,
  type Role,
  TOPICS,
  type TopicSpec,
  type Topics,
} from "../schemas/topics.js";
import { type Principal, SCOPED_PARAM } from "./principal.js";

/**
 * Per-role topic ACL, derived from the topic table. Pure functions over the levels after the prefix;
 * the broker hook calls them once per PUBLISH / SUBSCRIBE, so matching is a split and a few string
 * compares: the rules are built once at load, nothing is compiled or allocated per call beyond the split.
 */

/** A level of a rule: a literal, or one of the three placeholders below. */
type LevelSpec = string | typeof ANY_ID | typeof OWN_ID | typeof TID;
/** Any valid id (`^[A-Za-z0-9_-]{1,64}$`); in a subscribe rule with `plus`, also a bare `+`. */
const ANY_ID = Symbol("any id");
/** A `{tid}` level: ANY_ID, unless the principal carries a list of targets, then one of those. */
const TID = Symbol("tid");
/** Exactly the caller's own id: identity travels in the topic, so a client may speak only as itself. */
const OWN_ID = Symbol("own id");

interface Rule {
  readonly levels: readonly LevelSpec[];
  /** Publish only: refuse a retained message (a retained frame would replay forever). */
  readonly noRetain: boolean;
  /** Subscribe only: `+` may stand in an ANY_ID level (the key server watching every target). */
  readonly plus: boolean;
}

interface RoleRules {
  readonly publish: readonly Rule[];
  readonly subscribe: readonly Rule[];
}

/** A role's rules under the prefix and under the discovery prefix (foreign topics). */
interface Rules {
  readonly own: RoleRules;
  readonly foreign: RoleRules;
}

export interface Acl {
  /** May `principal` publish on `topic` (with this retain flag)? Anything not granted is refused. */
  authorizePublish(principal: Principal, topic: string, retain: boolean, topics: Topics): boolean;
  /** May `principal` subscribe to `filter`? `#` is never allowed, `+` only where its grant says. */
  authorizeSubscribe(principal: Principal, filter: string, topics: Topics): boolean;
}

function ruleLevels(name: string, levels: readonly PatternLevel[], own: string | undefined): LevelSpec[] {
  if (own !== undefined && !levels.some((l) => typeof l !== "string" && l.param === own)) {
    throw new Error(`topic ${name}: own level {${own}} is not in its pattern`);
  }
  return levels.map((l) =>
    typeof l === "string" ? l : l.param === own ? OWN_ID : l.param === SCOPED_PARAM ? TID : ANY_ID,
  );
}

function rulesFor(role: Role, table: Readonly<Record<string, TopicSpec>>): RoleRules {
  const publish: Rule[] = [];
  const subscribe: Rule[] = [];
  for (const [name, spec] of Object.entries(table)) {
    const levels = patternLevels(spec.pattern);
    const pub = spec.publish[role];
    if (pub) publish.push({ levels: ruleLevels(name, levels, pub.own), noRetain: !spec.retain, plus: false });
    const sub = spec.subscribe[role];
    if (sub) {
      subscribe.push({ levels: ruleLevels(name, levels, sub.own), noRetain: false, plus: sub.plus === true });
    }
  }
  return { publish, subscribe };
}

function levelMatches(spec: LevelSpec, level: string, who: Principal, plus: boolean): boolean {
  if (spec === ANY_ID) return isId(level) || (plus && level === "+");
  if (spec === TID) {
    const tids = who.tids;
    // Listed tids were valid ids when the account was stored; `+` is no id, so only "all" takes it.
    if (tids !== undefined && tids !== "all") return tids.has(level);
    return isId(level) || (plus && level === "+");
  }
  // A dashboard's own id is its account: its client id is a free choice, the account is what logged in.
  if (spec === OWN_ID)
    return who.role === "dashboard" ? level === who.account && isId(level) : level === who.id;
  return level === spec;
}

function matches(rule: Rule, levels: readonly string[], who: Principal): boolean {
  const specs = rule.levels;
  if (specs.length !== levels.length) return false;
  for (let i = 0; i < specs.length; i++) {
    const spec = specs[i];
    const level = levels[i];
    if (spec === undefined || level === undefined || !levelMatches(spec, level, who, rule.plus)) return false;
  }
  return true;
}

/**
 * The ACL of a topic table and of the foreign topics under the discovery prefix: the broker uses
 * TOPICS and DISCOVERY_TOPICS; a test may pass tables of its own.
 */
export function buildAcl(
  table: Readonly<Record<string, TopicSpec>>,
  foreign: Readonly<Record<string, TopicSpec>> = {},
): Acl {
  const rules = new Map<string, Rules>(
    ROLES.map((role) => [role, { own: rulesFor(role, table), foreign: rulesFor(role, foreign) }]),
  );
  const rulesOf = (principal: Principal): Rules | undefined =>
    // An id that is not a valid level (a `+`, `#`, `/`) would turn OWN_ID into a wildcard: refuse it all.
    // A dashboard is bounded by its list of targets: without one it gets nothing, never everything.
    isId(principal.id) && (principal.role !== "dashboard" || principal.tids !== undefined)
      ? rules.get(principal.role)
      : undefined;
  /** The rules and levels that apply to `topic`: under the prefix, else under the discovery prefix. */
  const scope = (principal: Principal, topic: string, topics: Topics) => {
    const r = rulesOf(principal);
    if (!r) return undefined;
    const own = topics.relative(topic);
    if (own) return { rules: r.own, levels: own };
    const foreignLevels = topics.discoveryRelative(topic);
    return foreignLevels ? { rules: r.foreign, levels: foreignLevels } : undefined;
  };
  return {
    authorizePublish(principal, topic, retain, topics) {
      const s = scope(principal, topic, topics);
      if (!s) return false;
      for (const rule of s.rules.publish) {
        if (matches(rule, s.levels, principal)) return !(retain && rule.noRetain);
      }
      return false;
    },
    authorizeSubscribe(principal, filter, topics) {
      const s = scope(principal, filter, topics);
      if (!s) return false;
      return s.rules.subscribe.some((rule) => matches(rule, s.levels, principal));
    },
  };
}

/** The product's ACL, over the topic table and the discovery topics: the broker's default. */
export const DEFAULT_ACL: Acl = buildAcl(TOPICS, DISCOVERY_TOPICS);
export const authorizePublish: Acl["authorizePublish"] = DEFAULT_ACL.authorizePublish;
export const authorizeSubscribe: Acl["authorizeSubscribe"] = DEFAULT_ACL.authorizeSubscribe;
