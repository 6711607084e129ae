import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { REFUSAL_REASONS } from "../../schemas/reasons.js";
import { TokenType } from "../../schemas/tokens.js";
import { decisionOrder } from "../../target/checks.js";
import { UNLOCK_CHECKS } from "../../target/unlock.js";

/** The decision tables of docs/PROTOCOL.md must follow the code's ordered check lists, not the reverse. */

const text = readFileSync(new URL("../../docs/PROTOCOL.md", import.meta.url), "utf8");

function section(title: string): string {
  const start = text.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`docs/PROTOCOL.md has no section "${title}"`);
  const end = text.indexOf("\n## ", start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

interface Row {
  n: number;
  check: string;
  reason: string;
  for: string | undefined;
}

/** The rows of the table whose header line is `header`. */
function table(body: string, header: string): Row[] {
  const lines = body.split("\n");
  const at = lines.indexOf(header);
  if (at < 0) throw new Error(`no table "${header}"`);
  const rows: Row[] = [];
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim());
    const code = (cell: string | undefined) =>
      /^`([a-z0-9_]+)`$/.exec(cell ?? "")?.[1] ?? `(not code: ${cell})`;
    rows.push({ n: Number(cells[0]), check: code(cells[1]), reason: code(cells[2]), for: cells[3] });
  }
  return rows;
}

/** The checks in table order for rows that apply to `kind`, a check on several rows named once. */
function order(rows: readonly Row[], kind?: string): string[] {
  const names: string[] = [];
  for (const row of rows) {
    if (kind !== undefined && row.for !== "both" && row.for !== kind) continue;
    if (names.at(-1) !== row.check) names.push(row.check);
  }
  return names;
}

describe("docs/PROTOCOL.md, the target's decision", () => {
  const body = section("The target's decision");
  const frames = table(body, "| # | check | refusal reason | for | meaning |");
  const unlock = table(body, "| # | check | refusal reason | meaning |");

  it("lists a stored frame's checks in the order the code runs them", () => {
    expect(order(frames, "stored")).toEqual(decisionOrder(TokenType.frame));
  });

  it("lists a relay frame's checks in the order the code runs them", () => {
    expect(order(frames, "relay")).toEqual(decisionOrder(TokenType.relay));
  });

  it("lists an unlock command's checks in the order the code runs them", () => {
    expect(order(unlock)).toEqual(UNLOCK_CHECKS.names);
  });

  it("numbers the checks 1, 2, 3…, a check with several reasons on rows of one number", () => {
    for (const rows of [frames, unlock]) {
      let n = 0;
      const expected = rows.map((row, i) => (rows[i - 1]?.check === row.check ? n : ++n));
      expect(rows.map((r) => r.n)).toEqual(expected);
    }
  });

  it("names only refusal reasons the code has", () => {
    const known: readonly string[] = REFUSAL_REASONS;
    expect([...frames, ...unlock].map((r) => r.reason).filter((r) => !known.includes(r))).toEqual([]);
  });
});
