import { SparekeyError } from "../common/errors.js";
import type { WeeklyWindow } from "../schemas/tokens.js";

/**
 * Weekly schedules (a key works only inside one of its windows), evaluated on the target's wall clock
 * in its configured IANA zone. Windows are judged in local wall time, so DST needs no special case:
 * on the spring-forward day the skipped hour simply never shows on the clock, and on the fall-back day
 * the repeated hour is inside a window both times.
 */

const MINUTES_PER_DAY = 1440;
const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;
const ISO_WEEKDAY: Readonly<Record<string, number>> = {
  Mon: 1,
  Tue: 2,
  Wed: 3,
  Thu: 4,
  Fri: 5,
  Sat: 6,
  Sun: 7,
};

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Throws `config_invalid` naming the zone when it is not one the runtime knows. */
export function assertTimeZone(timeZone: string): string {
  try {
    formatter(timeZone);
  } catch {
    throw new SparekeyError(
      "config_invalid",
      `target config: time_zone "${timeZone}" is not a known IANA time zone (e.g. "Europe/Berlin")`,
    );
  }
  return timeZone;
}

/** Minutes since Monday 00:00 local time, with the seconds as a fraction. */
export function localWeekMinute(nowMs: number, timeZone: string): number {
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  for (const part of formatter(timeZone).formatToParts(nowMs)) {
    if (part.type === "weekday") day = ISO_WEEKDAY[part.value] ?? 0;
    else if (part.type === "hour") hour = Number(part.value);
    else if (part.type === "minute") minute = Number(part.value);
    else if (part.type === "second") second = Number(part.value);
  }
  if (day === 0) throw new Error(`cannot read the weekday in ${timeZone}`);
  return (day - 1) * MINUTES_PER_DAY + hour * 60 + minute + second / 60;
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

/** Is `weekMinute` (local) inside the window? A window belongs to the day it starts on. */
export function windowContains(w: WeeklyWindow, weekMinute: number): boolean {
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  // `end` at or before `start` runs past midnight into the next day.
  const length = end > start ? end - start : end + MINUTES_PER_DAY - start;
  for (const day of w.days) {
    const opens = (day - 1) * MINUTES_PER_DAY + start;
    // Sunday's window past midnight runs into Monday: the week wraps.
    const into = (((weekMinute - opens) % MINUTES_PER_WEEK) + MINUTES_PER_WEEK) % MINUTES_PER_WEEK;
    if (into < length) return true;
  }
  return false;
}

/** True when `nowMs` falls in at least one window, on the wall clock of `timeZone`. */
export function inSchedule(windows: readonly WeeklyWindow[], nowMs: number, timeZone: string): boolean {
  const weekMinute = localWeekMinute(nowMs, timeZone);
  return windows.some((w) => windowContains(w, weekMinute));
}

/**
 * The next instant at which a schedule can change: the next whole minute. Every IANA zone today is
 * offset from UTC by whole minutes, so local minute boundaries are UTC minute boundaries, and a
 * window (minute resolution) opens or closes exactly there.
 */
export function nextMinuteBoundary(nowMs: number): number {
  return Math.floor(nowMs / 60_000) * 60_000 + 60_000;
}
