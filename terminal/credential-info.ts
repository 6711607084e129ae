import { formatWindow } from "../common/schedule.js";
import { formatInstant, localZone } from "../common/time-zone.js";
import type { CredentialPayload } from "../schemas/tokens.js";

/** The zone this machine shows times in, by name (IANA), e.g. "Europe/Berlin". */
export const localTimeZone = localZone;
export { formatInstant };

/** 5400 -> "90 min", 7200 -> "2 h", 86400 -> "1 d", 61 -> "61 s". */
export function formatDuration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
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
