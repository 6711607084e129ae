/** Benchmarks print a human table and then, as the very last line, one JSON object. */
export function printTable(rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const first = rows[0];
  if (!first) return;
  const cols = Object.keys(first);
  const width = (c: string) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padStart(width(cols[i] ?? ""))).join("  ");
  process.stdout.write(`${line(cols)}\n`);
  process.stdout.write(`${cols.map((c) => "-".repeat(width(c))).join("  ")}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c] ?? "")))}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
