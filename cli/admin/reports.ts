import { SparekeyError } from "../../common/errors.js";
import { auditVerify } from "../../keyserver/admin/audit.js";
import { adminCommand, table } from "./common.js";

export const audit = adminCommand(
  {
    name: "sparekey admin audit",
    summary: "show the most recent audit log entries, oldest first; `audit verify` checks the hash chain",
    usage: "sparekey admin audit [verify] [--limit N] [--json]",
    options: {
      limit: { type: "string", help: "how many entries", default: "50" },
      json: { type: "boolean", help: "print JSON" },
    },
    positionals: true,
  },
  async (ctx, p, io) => {
    const [action, ...extra] = p.positionals;
    if (extra.length > 0 || (action !== undefined && action !== "verify"))
      throw new SparekeyError("bad_request", "audit: the only action is `verify`");
    if (action === "verify") {
      const report = await auditVerify(ctx);
      if (p.values.json) io.stdout.write(`${JSON.stringify(report)}\n`);
      if (!report.ok && report.firstBad)
        throw new SparekeyError(
          "audit_chain_broken",
          `audit log entry ${report.firstBad.seq} is ${report.firstBad.reason.replaceAll("_", " ")} (${report.rows} entries checked)`,
        );
      return `audit chain verified: ${report.rows} entries`;
    }
    const rows = await ctx.store.listAudit(p.int("limit", 1, 100_000));
    if (p.values.json) return JSON.stringify(rows);
    // The table is for people: ISO UTC instead of Unix ms (--json keeps the stored value).
    const readable = rows.map((r) => ({ ...r, ts: new Date(r.ts).toISOString() }));
    io.stdout.write(table(readable, ["seq", "ts", "actor", "op", "subject", "outcome", "detail"]));
    return `${rows.length} audit entries`;
  },
);
