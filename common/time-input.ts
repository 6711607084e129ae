import type { WeeklyWindow } from "../schemas/tokens.js";
import { SparekeyError } from "./errors.js";
import { assertZone, offsetMs, type WallTime, WEEKDAYS } from "./time-zone.js";

/**
 * Human time input for the CLI (dates, durations, weekly schedules). Pure: every function takes the
 * zone it reads in; zones and wall clocks come from `time-zone.ts`, schedules are judged by `schedule.ts`.
 */

function bad(message: string): SparekeyError {
  return new SparekeyError("bad_request", message);
}

type Fields = Omit<WallTime, "weekday">;

function checkFields(f: Fields, value: string): void {
  const daysInMonth = new Date(Date.UTC(f.year, f.month, 0)).getUTCDate();
  if (
    f.year < 1970 ||
    f.year > 9999 ||
    f.month < 1 ||
    f.month > 12 ||
    f.day < 1 ||
    f.day > daysInMonth ||
    f.hour > 23 ||
    f.minute > 59 ||
    f.second > 59
  )
    throw bad(`"${value}" is not a valid date and time`);
}

/**
 * The instant a wall-clock time in `zone` names. A time in a DST gap does not exist: refused. A time
 * in a DST overlap exists twice: the earlier instant is taken (as Temporal's "compatible" does); the
 * CLI prints the UTC instant, so the choice is visible.
 */
export function wallToUnixMs(f: Fields, zone: string, value: string): number {
  checkFields(f, value);
  const guess = Date.UTC(f.year, f.month - 1, f.day, f.hour, f.minute, f.second);
  const day = 86_400_000;
  const offsets = new Set([offsetMs(zone, guess - day), offsetMs(zone, guess), offsetMs(zone, guess + day)]);
  const found = [...offsets]
    .map((o) => guess - o)
    .filter((t) => offsetMs(zone, t) === guess - t)
    .sort((a, b) => a - b);
  const first = found[0];
  if (first === undefined) throw bad(`"${value}" does not exist in ${zone} (skipped by a DST change)`);
  return first;
}

export interface ParsedInstant {
  /** Unix seconds. */
  unix: number;
  /** The zone the value was read in: an IANA name, or the offset the value itself gave ("UTC", "+02:00"). */
  zone: string;
  /** The instant as ISO 8601 UTC, for the CLI to echo. */
  utc: string;
}

const ISO =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?(Z|z|[+-][0-9]{2}:?[0-9]{2})?$/;
const COMPACT = /^([0-9]{4})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})$/;

function offsetOf(designator: string, value: string): { ms: number; label: string } {
  if (designator === "Z" || designator === "z") return { ms: 0, label: "UTC" };
  const m = /^([+-])([0-9]{2}):?([0-9]{2})$/.exec(designator);
  const hours = Number(m?.[2]);
  const minutes = Number(m?.[3]);
  if (!m || hours > 23 || minutes > 59) throw bad(`"${value}": bad UTC offset "${designator}"`);
  const sign = m[1] === "-" ? -1 : 1;
  return { ms: sign * (hours * 60 + minutes) * 60_000, label: `${m[1]}${m[2]}:${m[3]}` };
}

function utcText(unix: number): string {
  return new Date(unix * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * A point in time from the CLI: ISO 8601 with a zone (`2006-01-26T21:00:00+01:00`, `...Z`), ISO 8601
 * without one, or the compact `YYYYMMDDhhmmss`; the last two are wall time in `zone`. `@SECONDS` is a
 * Unix time; `now`, `+DURATION` and `-DURATION` (`+2h`, `-30m`, `+1d12h`) are relative to `nowMs`.
 */
export function parseInstant(value: string, zone: string, nowMs: number = Date.now()): ParsedInstant {
  const text = value.trim();
  // `@SECONDS`: a Unix time, for scripts.
  if (/^@[0-9]{1,12}$/.test(text)) {
    const unix = Number(text.slice(1));
    return { unix, zone: "UTC", utc: utcText(unix) };
  }
  // Relative to now, in whole seconds, so the printed instant is the one stored.
  if (text === "now" || /^[+-]/.test(text)) {
    const now = Math.floor(nowMs / 1000);
    const sign = text.startsWith("-") ? -1 : 1;
    const unix = text === "now" ? now : now + sign * parseDuration(text.slice(1), 1, 3_153_600_000);
    if (unix < 0) throw bad(`"${value}" is before 1970`);
    return { unix, zone: "UTC", utc: utcText(unix) };
  }
  const n = (s: string | undefined) => Number(s ?? "0");
  let unixMs: number;
  let usedZone: string;
  const iso = ISO.exec(text);
  const compact = iso ? null : COMPACT.exec(text);
  const m = iso ?? compact;
  if (!m)
    throw bad(
      `"${value.slice(0, 64)}" is not a date: use ISO 8601 (2006-01-26T21:00:00, optionally with Z or +01:00), YYYYMMDDhhmmss, now, or +2h / -30m from now`,
    );
  const fields: Fields = {
    year: n(m[1]),
    month: n(m[2]),
    day: n(m[3]),
    hour: n(m[4]),
    minute: n(m[5]),
    second: n(m[6]),
  };
  const designator = iso ? iso[7] : undefined;
  if (designator !== undefined) {
    checkFields(fields, value);
    const offset = offsetOf(designator, value);
    unixMs =
      Date.UTC(fields.year, fields.month - 1, fields.day, fields.hour, fields.minute, fields.second) -
      offset.ms;
    usedZone = offset.label;
  } else {
    unixMs = wallToUnixMs(fields, assertZone(zone), value);
    usedZone = zone;
  }
  if (unixMs < 0) throw bad(`"${value}" is before 1970`);
  const unix = Math.floor(unixMs / 1000);
  return { unix, zone: usedZone, utc: utcText(unix) };
}

const UNIT_S: Record<string, number> = { d: 86_400, h: 3_600, m: 60, s: 1 };

/** `90s`, `30m`, `2h`, `1d`, or combined `1h30m`: seconds. */
export function parseDuration(value: string, min = 1, max = 31_536_000): number {
  const text = value.trim();
  if (!/^([0-9]{1,9}[dhms])+$/.test(text))
    throw bad(`"${value.slice(0, 64)}" is not a duration: use e.g. 90s, 30m, 2h, 1d or 1h30m`);
  let total = 0;
  for (const part of text.matchAll(/([0-9]+)([dhms])/g))
    total += Number(part[1]) * (UNIT_S[part[2] ?? ""] ?? 0);
  if (total < min || total > max) throw bad(`duration "${value}" must be between ${min} and ${max} seconds`);
  return total;
}

function dayNumber(name: string, value: string): number {
  const i = WEEKDAYS.findIndex((d) => d.toLowerCase() === name.toLowerCase());
  if (i < 0) throw bad(`schedule "${value}": "${name}" is not a day (Mon..Sun)`);
  return i + 1;
}

function parseDays(spec: string, value: string): number[] {
  const lower = spec.toLowerCase();
  if (lower === "daily" || lower === "*") return [1, 2, 3, 4, 5, 6, 7];
  const days = new Set<number>();
  for (const item of spec.split(",")) {
    const [from, to, ...rest] = item.split("-");
    if (from === undefined || from === "" || rest.length > 0 || to === "")
      throw bad(`schedule "${value}": bad day list "${spec}"`);
    const a = dayNumber(from, value);
    const b = to === undefined ? a : dayNumber(to, value);
    // A range may wrap the week: Fri-Mon is Fri, Sat, Sun, Mon.
    for (let d = a; ; d = (d % 7) + 1) {
      days.add(d);
      if (d === b) break;
    }
  }
  return [...days].sort((x, y) => x - y);
}

/**
 * `"Mon-Fri 08:00-18:00"`, `"Sat,Sun 10:00-14:00"`, `"Fri 22:00-06:00"` (past midnight: belongs to
 * Friday), `"daily 00:00-24:00"` -> a WeeklyWindow.
 */
export function parseSchedule(value: string): WeeklyWindow {
  const m = /^\s*(\S+)\s+([0-9]{2}:[0-9]{2})-([0-9]{2}:[0-9]{2})\s*$/.exec(value);
  if (!m) throw bad(`schedule "${value.slice(0, 64)}": use DAYS HH:MM-HH:MM, e.g. "Mon-Fri 08:00-18:00"`);
  const [, days, start, end] = m;
  const time = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
  if (!time.test(start ?? "")) throw bad(`schedule "${value}": bad start time "${start}"`);
  if (end !== "24:00" && !time.test(end ?? "")) throw bad(`schedule "${value}": bad end time "${end}"`);
  return { days: parseDays(days ?? "", value), start: start ?? "", end: end ?? "" };
}
