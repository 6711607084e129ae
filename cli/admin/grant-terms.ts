import type { CliIo, Options } from "../../common/cli.js";
import { SparekeyError } from "../../common/errors.js";
import { parseDuration, parseInstant, parseSchedule } from "../../common/time-input.js";
import { formatWall, localZone } from "../../common/time-zone.js";
import type { GrantPatch } from "../../keyserver/grants.js";

/** The limit flags of `grant` and `grant edit`. */
export const GRANT_LIMIT_OPTIONS = {
  nbf: {
    type: "string",
    help: "not before: ISO 8601 (2006-01-26T21:00, +01:00 or Z), YYYYMMDDhhmmss, @UNIX, now, or +2h / -30m from now",
  },
  exp: { type: "string", help: "expires: same forms as --nbf" },
  tz: { type: "string", help: "zone for dates without one", defaultText: "this system's zone" },
  "max-uses": { type: "string", help: "uses allowed per credential" },
  schedule: {
    type: "string",
    multiple: true,
    help: 'weekly window in the target\'s zone, e.g. "Mon-Fri 08:00-18:00"',
  },
  "first-use-ttl": { type: "string", help: "key expires this long after first use: 90s, 30m, 2h" },
  "unlock-password": { type: "boolean", help: "remote unlock needs the user's password again" },
} as const satisfies Options;

/** `grant edit` only: clear a limit. */
export const GRANT_CLEAR_OPTIONS = {
  "no-nbf": { type: "boolean", help: "clear not-before" },
  "no-exp": { type: "boolean", help: "clear the expiry" },
  "no-max-uses": { type: "boolean", help: "clear the use limit" },
  "no-schedule": { type: "boolean", help: "clear the schedule" },
  "no-first-use-ttl": { type: "boolean", help: "clear the first-use expiry" },
  "no-unlock-password": { type: "boolean", help: "remote unlock no longer asks for the password" },
} as const satisfies Options;

type LimitValues = {
  nbf: string | undefined;
  exp: string | undefined;
  tz: string | undefined;
  "max-uses": string | undefined;
  schedule: string[];
  "first-use-ttl": string | undefined;
  "unlock-password": boolean;
};
type ClearValues = { [K in keyof typeof GRANT_CLEAR_OPTIONS]: boolean };

interface LimitParse {
  name: string;
  values: LimitValues & Partial<ClearValues>;
  int(flag: "max-uses", min: number, max: number): number | undefined;
}

/**
 * The limits given on the command line as a patch: set members for flags given, `null` for `--no-…`
 * flags, nothing for flags absent. Prints the zone each date was read in and the instant it became.
 */
export function grantPatch(p: LimitParse, io: CliIo): GrantPatch {
  const v = p.values;
  const zone = v.tz ?? localZone();
  const instant = (name: "nbf" | "exp") => {
    const text = v[name];
    if (text === undefined) return undefined;
    const at = parseInstant(text, zone);
    io.stdout.write(`${name}: ${text} read in ${at.zone} = ${at.utc} (${formatWall(at.unix, zone)})\n`);
    return at.unix;
  };
  const patch: GrantPatch = {};
  const set = <K extends keyof GrantPatch>(key: K, flag: string, value: GrantPatch[K] | undefined) => {
    const cleared = v[`no-${flag}` as keyof ClearValues] === true;
    if (cleared && value !== undefined)
      throw new SparekeyError("bad_request", `${p.name}: --${flag} and --no-${flag} contradict`);
    if (cleared) patch[key] = null;
    else if (value !== undefined) patch[key] = value;
  };
  set("nbf", "nbf", instant("nbf"));
  set("exp", "exp", instant("exp"));
  set("max_uses", "max-uses", p.int("max-uses", 1, 1_000_000));
  set("schedule", "schedule", v.schedule.length > 0 ? v.schedule.map((w) => parseSchedule(w)) : undefined);
  const ttl = v["first-use-ttl"];
  set("first_use_ttl_s", "first-use-ttl", ttl !== undefined ? parseDuration(ttl) : undefined);
  set("unlock_password", "unlock-password", v["unlock-password"] ? true : undefined);
  return patch;
}
