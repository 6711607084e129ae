import { SparekeyError } from "./errors.js";

/**
 * The one place that reads wall clocks in IANA zones (key server, target, terminal, CLI). Zones are
 * resolved through Intl, so DST follows the runtime's tz database.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Undefined when the runtime does not know the zone. */
function formatter(zone: string): Intl.DateTimeFormat | undefined {
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
      return undefined;
    }
    formatters.set(zone, f);
  }
  return f;
}

/** The system's local zone (what `--tz` and the terminal's display default to). */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** Throws a bad_request naming the zone when it is not an IANA zone the runtime knows (CLI input). */
export function assertZone(zone: string): string {
  if (!formatter(zone)) throw new SparekeyError("bad_request", `unknown time zone "${zone.slice(0, 64)}"`);
  return zone;
}

/** Throws `config_invalid` naming the zone: a target with an unknown zone would fail every scheduled key. */
export function assertTimeZone(zone: string): string {
  if (!formatter(zone)) {
    throw new SparekeyError(
      "config_invalid",
      `target config: time_zone "${zone}" is not a known IANA time zone (e.g. "Europe/Berlin")`,
    );
  }
  return zone;
}

export const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;

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
  const f = formatter(assertZone(zone));
  const parts: Record<string, string> = {};
  for (const p of f?.formatToParts(new Date(unixMs)) ?? []) parts[p.type] = p.value;
  const weekday = WEEKDAYS.indexOf((parts.weekday ?? "") as (typeof WEEKDAYS)[number]) + 1;
  if (weekday === 0) throw new Error(`cannot read the weekday in ${zone}`);
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

const pad = (x: number) => String(x).padStart(2, "0");

function wallText(w: WallTime): string {
  return `${w.year}-${pad(w.month)}-${pad(w.day)} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
}

/** `2006-01-26 21:00:00 Europe/Berlin` for an instant, to echo what a zone made of it. */
export function formatWall(unix: number, zone: string): string {
  return `${wallText(wallTimeIn(zone, unix * 1000))} ${zone}`;
}

/** `2030-03-18 18:46:40 UTC+01:00` in `zone`; the offset is printed so the instant is unambiguous. */
export function formatInstant(unixSeconds: number, zone: string): string {
  const ms = unixSeconds * 1000;
  const offsetMin = Math.round(offsetMs(zone, ms) / 60_000);
  const sign = offsetMin < 0 ? "-" : "+";
  const abs = Math.abs(offsetMin);
  return `${wallText(wallTimeIn(zone, ms))} UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}
