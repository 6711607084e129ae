import type { CredentialPayload, WeeklyWindow } from "../schemas/tokens.js";

const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;

/** The zone this machine shows times in, by name (IANA), e.g. "Europe/Berlin". */
export function localTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** `2030-03-18 18:46:40 UTC+01:00` in `zone`; the offset is printed so the instant is unambiguous. */
export function formatInstant(unixSeconds: number, zone: string): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "longOffset",
  }).formatToParts(new Date(unixSeconds * 1000));
  const get = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? "";
  const gmt = get("timeZoneName");
  const offset = gmt === "GMT" ? "UTC+00:00" : gmt.replace("GMT", "UTC");
  return `${get("year")}-${get("month")}-${get("day")} ${get("hour")}:${get("minute")}:${get("second")} ${offset}`;
}

/** 5400 -> "90 min", 7200 -> "2 h", 86400 -> "1 d", 61 -> "61 s". */
export function formatDuration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** Runs of consecutive ISO weekdays as ranges: [1,2,3,5] -> "Mon-Wed,Fri". */
function formatDays(days: readonly number[]): string {
  const sorted = [...days].sort((a, b) => a - b);
  const runs: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] ?? 0) === (sorted[j] ?? 0) + 1) j++;
    const from = DAY_NAMES[(sorted[i] ?? 1) - 1] ?? "?";
    const to = DAY_NAMES[(sorted[j] ?? 1) - 1] ?? "?";
    runs.push(j - i >= 2 ? `${from}-${to}` : j > i ? `${from},${to}` : from);
    i = j + 1;
  }
  return runs.join(",");
}

export function formatWindow(w: WeeklyWindow): string {
  const overnight = w.end <= w.start ? " (ends next day)" : "";
  return `${formatDays(w.days)} ${w.start}-${w.end}${overnight}`;
}

/**
 * The limits of a credential, one per line, for `download` and `status`. Instants are shown in
 * `zone` (named on the last line); a schedule is in the target's zone, which the terminal cannot know.
 */
export function describeCredential(c: CredentialPayload, zone: string): string[] {
  const lines = [`valid from  ${formatInstant(c.nbf, zone)}`];
  lines.push(c.exp === undefined ? "expires     never" : `expires     ${formatInstant(c.exp, zone)}`);
  if (c.max_uses !== undefined) lines.push(`uses        at most ${c.max_uses}`);
  if (c.schedule !== undefined) {
    lines.push(`schedule    ${c.schedule.map(formatWindow).join("; ")} (target's local time)`);
  }
  if (c.first_use_ttl_s !== undefined) {
    lines.push(`first use   expires ${formatDuration(c.first_use_ttl_s)} after the first use`);
  }
  lines.push(`times in    ${zone}`);
  return lines;
}
