/**
 * Repeated members. `JSON.parse` keeps the last of `{"alg":"none","alg":"EdDSA"}` while another parser
 * (firmware, a proxy) may keep the first, so the two would judge different documents: a JSON text with
 * a repeated member in any object is refused outright (RFC 8725 §3.10 asks JWS parsers to do so).
 *
 * The check compares the member names written in the text with the members the parsed value holds:
 * JSON.parse collapses a repeated name into one property, so any difference is a repeat. That costs one
 * scan of the text and one walk of the value, with no per-object set of names.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

function isJsonWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** How many member names the text writes: string literals followed (after whitespace) by a colon. */
function membersWritten(text: string): number {
  let count = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    if (text.charCodeAt(i) !== QUOTE) continue;
    // Skip the string literal; an escaped character never ends it.
    i++;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === BACKSLASH) i += 2;
      else if (c === QUOTE) break;
      else i++;
    }
    let j = i + 1;
    while (j < n && isJsonWhitespace(text.charCodeAt(j))) j++;
    if (j < n && text.charCodeAt(j) === COLON) count++;
    i = j - 1;
  }
  return count;
}

/** How many members the parsed value holds, over every nested object (iterative: depth is untrusted). */
function membersHeld(value: unknown): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const v = pending.pop();
    if (typeof v !== "object" || v === null) continue;
    if (Array.isArray(v)) {
      for (const item of v) pending.push(item);
      continue;
    }
    const keys = Object.keys(v);
    count += keys.length;
    for (const key of keys) pending.push((v as Record<string, unknown>)[key]);
  }
  return count;
}

/** True when some object in `text` (already parsed into `value`) names a member twice. */
export function hasRepeatedMember(text: string, value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  return membersWritten(text) !== membersHeld(value);
}
