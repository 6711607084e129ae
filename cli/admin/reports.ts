import { SparekeyError } from "../../common/errors.js";
import { auditVerify } from "../../keyserver/admin/audit.js";
import type { AdminContext } from "../../keyserver/admin/context.js";
import { adminCommand, table } from "./common.js";

const LIST_KINDS = ["users", "terminals", "targets", "slots", "grants"] as const;
type ListKind = (typeof LIST_KINDS)[number];

async function listRows(ctx: AdminContext, kind: ListKind): Promise<Record<string, unknown>[]> {
  switch (kind) {
    case "users":
      return ctx.store.listUsers();
    case "terminals":
      return ctx.store.listTerminals().then((rows) => rows.map((r) => ({ ...r })));
    case "targets":
      return ctx.store.listTargets();
    case "slots":
      return ctx.store.listSlots().then((rows) => rows.map((r) => ({ ...r })));
    case "grants":
      return ctx.store.listGrants();
  }
}

const COLUMNS: Record<ListKind, string[]> = {
  users: ["id", "created"],
  terminals: ["serial", "kind", "user", "public_key", "disabled", "created"],
  targets: ["tid", "registry_version", "published_version", "created"],
  slots: ["slot", "tids", "gen", "min_gen", "status", "created"],
  grants: [
    "user_id",
    "slot",
    "mode",
    "status",
    "nbf",
    "exp",
    "max_uses",
    "schedule",
    "first_use_ttl_s",
    "unlock_password",
    "created",
  ],
};

export const list = adminCommand(
  {
    name: "sparekey admin list",
    summary: "list users, terminals, targets, slots or grants (all when none is named)",
    usage: `sparekey admin list [${LIST_KINDS.join("|")}] [--json]`,
    options: { json: { type: "boolean", help: "print JSON" } },
    positionals: true,
  },
  async (ctx, p, io) => {
    if (p.positionals.length > 1) throw new SparekeyError("bad_request", "list: name at most one kind");
    const wanted = p.positionals[0];
    const kinds = wanted === undefined ? [...LIST_KINDS] : LIST_KINDS.filter((k) => k === wanted);
    if (kinds.length === 0)
      throw new SparekeyError("bad_request", `list: kind must be one of ${LIST_KINDS.join(", ")}`);
    const result: Record<string, Record<string, unknown>[]> = {};
    for (const kind of kinds) result[kind] = await listRows(ctx, kind);
    if (p.values.json) return JSON.stringify(wanted === undefined ? result : (result[wanted] ?? []));
    for (const kind of kinds) {
      if (kinds.length > 1) io.stdout.write(`${kind}:\n`);
      io.stdout.write(table(result[kind] ?? [], COLUMNS[kind]));
    }
    return `${kinds.map((k) => `${result[k]?.length ?? 0} ${k}`).join(", ")}`;
  },
);

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
