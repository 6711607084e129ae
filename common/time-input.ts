import type { WeeklyWindow } from "../schemas/tokens.js";
import { SparekeyError } from "./errors.js";

/**
 * Human time input for the CLI (dates, durations, weekly schedules) and the one schedule evaluator.
 * Pure: every function takes the zone and the instant it works on; zones are IANA names resolved
 * through Intl, so DST follows the runtime's tz database.
 */

function bad(message: string): SparekeyError {
  return new SparekeyError("bad_request", message);
}

/** The system's local zone (what `--tz` defaults to). */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
        weekday: "short",
      });
    } catch {
      throw bad(`unknown time zone "${zone.slice(0, 64)}"`);
    }
    formatters.set(zone, f);
  }
  return f;
}

/** Throws a bad_request naming the zone when it is not an IANA zone the runtime knows. */
export function assertZone(zone: string): string {
  formatter(zone);
  return zone;
}

const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;

export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** ISO weekday, 1 = Monday. */
  weekday: number;
}

/** The wall-clock time in `zone` at `unixMs`. */
export function wallTimeIn(zone: string, unixMs: number): WallTime {
  const parts: Record<string, string> = {};
  for (const p of formatter(zone).formatToParts(new Date(unixMs))) parts[p.type] = p.value;
  const weekday = WEEKDAYS.indexOf((parts.weekday ?? "") as (typeof WEEKDAYS)[number]) + 1;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday,
  };
}

/** UTC offset of `zone` at `unixMs`, in milliseconds (east positive). */
export function offsetMs(zone: string, unixMs: number): number {
  const w = wallTimeIn(zone, unixMs);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - Math.floor(unixMs / 1000) * 1000;
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

/**
 * A point in time from the CLI: ISO 8601 with a zone (`2006-01-26T21:00:00+01:00`, `...Z`), ISO 8601
 * without one, or the compact `YYYYMMDDhhmmss`; the last two are wall time in `zone`. `@SECONDS` is a
 * Unix time.
 */
export function parseInstant(value: string, zone: string): ParsedInstant {
  const text = value.trim();
  // `@SECONDS`: a Unix time, for scripts.
  if (/^@[0-9]{1,12}$/.test(text)) {
    const unix = Number(text.slice(1));
    return { unix, zone: "UTC", utc: new Date(unix * 1000).toISOString().replace(".000Z", "Z") };
  }
  const n = (s: string | undefined) => Number(s ?? "0");
  let unixMs: number;
  let usedZone: string;
  const iso = ISO.exec(text);
  const compact = iso ? null : COMPACT.exec(text);
  const m = iso ?? compact;
  if (!m)
    throw bad(
      `"${value.slice(0, 64)}" is not a date: use ISO 8601 (2006-01-26T21:00:00, optionally with Z or +01:00) or YYYYMMDDhhmmss`,
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
  return {
    unix: Math.floor(unixMs / 1000),
    zone: usedZone,
    utc: new Date(unixMs).toISOString().replace(".000Z", "Z"),
  };
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

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

/**
 * Is `unixMs` inside any of the windows, read in `zone`? `start` inclusive, `end` exclusive; an end at
 * or before the start runs into the next day and belongs to the day it starts on.
 */
export function inSchedule(windows: readonly WeeklyWindow[], unixMs: number, zone: string): boolean {
  const w = wallTimeIn(zone, unixMs);
  const now = w.hour * 60 + w.minute;
  const yesterday = w.weekday === 1 ? 7 : w.weekday - 1;
  return windows.some((win) => {
    const s = minutesOf(win.start);
    const e = minutesOf(win.end);
    if (e > s) return win.days.includes(w.weekday) && now >= s && now < e;
    return (win.days.includes(w.weekday) && now >= s) || (win.days.includes(yesterday) && now < e);
  });
}

/** `2006-01-26 21:00:00 Europe/Berlin` for an instant, to echo what a zone made of it. */
export function formatWall(unix: number, zone: string): string {
  const w = wallTimeIn(zone, unix * 1000);
  const p = (x: number) => String(x).padStart(2, "0");
  return `${w.year}-${p(w.month)}-${p(w.day)} ${p(w.hour)}:${p(w.minute)}:${p(w.second)} ${zone}`;
}
