import { AuditRow } from "../../../schemas/keyserver.js";
import type { AuditLog } from "../store.js";
import { rows, type SqliteConnection } from "./connection.js";

/** The audit trail on SQLite (`seq` is AUTOINCREMENT: rows are never renumbered). */
export function sqliteAudit(c: SqliteConnection): AuditLog {
  return {
    async recordAudit(entry) {
      c.write(() => c.audit(entry), { quiet: true });
    },

    async listAudit(limit) {
      const recent = rows(
        AuditRow,
        c.db.prepare("SELECT * FROM audit ORDER BY seq DESC LIMIT ?").all(limit),
        "audit row",
      );
      return recent.reverse();
    },
  };
}
