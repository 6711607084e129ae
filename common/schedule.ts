import type { WeeklyWindow } from "../schemas/tokens.js";
import { WEEKDAYS, wallTimeIn } from "./time-zone.js";

/**
 * Weekly schedules (a key works only inside one of its windows): the one evaluator, used by the key
 * server (grant checks), the target (the decision and its session timers) and the terminal (display).
 * Windows are judged in local wall time, so DST needs no special case: on the spring-forward day the
 * skipped hour simply never shows on the clock, and on the fall-back day the repeated hour is inside a
 * window both times.
 */

const MINUTES_PER_DAY = 1440;
const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;

/** Minutes since Monday 00:00 local time, with the seconds as a fraction. */
export function localWeekMinute(nowMs: number, zone: string): number {
  const w = wallTimeIn(zone, nowMs);
  return (w.weekday - 1) * MINUTES_PER_DAY + w.hour * 60 + w.minute + w.second / 60;
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(":");
  return Number(h) * 60 + Number(m);
}

/**
 * Is `weekMinute` (local) inside the window? `start` inclusive, `end` exclusive; a window belongs to
 * the day it starts on.
 */
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

/** True when `nowMs` falls in at least one window, on the wall clock of `zone`. */
export function inSchedule(windows: readonly WeeklyWindow[], nowMs: number, zone: string): boolean {
  const weekMinute = localWeekMinute(nowMs, zone);
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

/** Runs of consecutive ISO weekdays as ranges: [1,2,3,5] -> "Mon-Wed,Fri". */
export function formatDays(days: readonly number[]): string {
  const sorted = [...days].sort((a, b) => a - b);
  const runs: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] ?? 0) === (sorted[j] ?? 0) + 1) j++;
    const from = WEEKDAYS[(sorted[i] ?? 1) - 1] ?? "?";
    const to = WEEKDAYS[(sorted[j] ?? 1) - 1] ?? "?";
    runs.push(j - i >= 2 ? `${from}-${to}` : j > i ? `${from},${to}` : from);
    i = j + 1;
  }
  return runs.join(",");
}

/** `Mon-Fri 08:00-18:00`, with "(ends next day)" for a window past midnight. */
export function formatWindow(w: WeeklyWindow): string {
  const overnight = minutesOf(w.end) <= minutesOf(w.start) ? " (ends next day)" : "";
  return `${formatDays(w.days)} ${w.start}-${w.end}${overnight}`;
}
