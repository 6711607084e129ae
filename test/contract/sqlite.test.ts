import { chmodSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it, onTestFinished } from "vitest";
import { auditVerify } from "../../keyserver/admin/audit.js";
import { MIGRATIONS, openSqliteStore } from "../../keyserver/store/sqlite/index.js";
import type { KeyStore } from "../../keyserver/store/store.js";
import { tempDir } from "../helpers/wait.js";
import { storeContract } from "./store.contract.js";

storeContract("SQLite", async () => {
  const path = join(tempDir(), "sparekey.db");
  return { open: async ({ now }) => openSqliteStore(path, { now, changePollMs: 10 }) };
});

/** A store with six audit rows (seq 1..6), closed again so the test can edit the file itself. */
async function auditedFile(): Promise<string> {
  const path = join(tempDir(), "sparekey.db");
  const store = openSqliteStore(path);
  await store.addUser({ id: "alice", passwordHash: "scrypt$not-checked" }, "admin");
  await store.addTerminal({ serial: "p1", user: "alice" }, "admin");
  await store.addTarget({ tid: "door-1", secretHash: "sha256$not-checked" }, "admin");
  await store.createSlot({ slot: "s1", tids: ["door-1"] }, "admin");
  await store.recordAudit({ actor: "p1", op: "relay", subject: "door-1", outcome: "no_grant" });
  await store.recordAudit({ actor: "p1", op: "unlock", subject: "door-1", outcome: "no_grant" });
  await store.close();
  return path;
}

function tamper(path: string, sql: string): void {
  const db = new Database(path);
  db.exec(sql);
  db.close();
}

function reopen(path: string): KeyStore {
  const store = openSqliteStore(path);
  onTestFinished(() => store.close());
  return store;
}

describe("audit integrity on a SQLite file edited behind the key server's back", () => {
  it("verifies the untouched file", async () => {
    const store = reopen(await auditedFile());
    expect(await auditVerify({ store })).toEqual({ ok: true, rows: 6 });
  });

  it("names a row whose detail was updated", async () => {
    const path = await auditedFile();
    tamper(path, `UPDATE audit SET detail = '{"tids":["door-2"]}' WHERE seq = 4`);
    expect(await auditVerify({ store: reopen(path) })).toEqual({
      ok: false,
      rows: 6,
      firstBad: { seq: 4, reason: "changed" },
    });
  });

  it("names a deleted row, in the middle and at the end", async () => {
    const middle = await auditedFile();
    tamper(middle, "DELETE FROM audit WHERE seq = 3");
    expect(await auditVerify({ store: reopen(middle) })).toEqual({
      ok: false,
      rows: 5,
      firstBad: { seq: 3, reason: "missing" },
    });
    const end = await auditedFile();
    tamper(end, "DELETE FROM audit WHERE seq = 6");
    expect(await auditVerify({ store: reopen(end) })).toMatchObject({
      firstBad: { seq: 6, reason: "missing" },
    });
  });

  it("names the first of two rows whose content was swapped", async () => {
    const path = await auditedFile();
    tamper(
      path,
      `UPDATE audit SET actor = CASE seq WHEN 2 THEN 'p1' ELSE 'admin' END,
         op = CASE seq WHEN 2 THEN 'relay' ELSE 'terminal.add' END,
         subject = CASE seq WHEN 2 THEN 'door-1' ELSE 'p1' END,
         outcome = CASE seq WHEN 2 THEN 'no_grant' ELSE 'ok' END,
         detail = (SELECT detail FROM audit a WHERE a.seq = CASE audit.seq WHEN 2 THEN 5 ELSE 2 END)
       WHERE seq IN (2, 5)`,
    );
    const store = reopen(path);
    expect((await store.listAudit(10)).map((a) => a.op)).toEqual([
      "user.add",
      "relay",
      "target.pair",
      "slot.create",
      "terminal.add",
      "unlock",
    ]);
    expect(await auditVerify({ store })).toEqual({
      ok: false,
      rows: 6,
      firstBad: { seq: 2, reason: "changed" },
    });
  });

  it("names a row whose hash was cleared, and keeps chaining new rows after a tampered one", async () => {
    const path = await auditedFile();
    tamper(path, "UPDATE audit SET hash = NULL WHERE seq = 5");
    const store = reopen(path);
    await store.recordAudit({ actor: "p1", op: "relay", subject: "door-1", outcome: "no_grant" });
    expect(await auditVerify({ store })).toEqual({
      ok: false,
      rows: 7,
      firstBad: { seq: 5, reason: "changed" },
    });
  });

  it("chains the audit rows of a file written before the chain existed when it is opened", async () => {
    const path = join(tempDir(), "old.db");
    const db = new Database(path);
    for (const sql of MIGRATIONS.slice(0, 2)) db.exec(sql);
    db.pragma("user_version = 2");
    const insert = db.prepare(
      "INSERT INTO audit (ts, actor, op, subject, outcome, detail) VALUES (1700000000000, 'admin', ?, 'x', 'ok', '{}')",
    );
    for (const op of ["user.add", "slot.create", "grant.add"]) insert.run(op);
    db.close();
    const store = reopen(path);
    await store.recordAudit({ actor: "p1", op: "relay", subject: "door-1", outcome: "no_grant" });
    expect(await auditVerify({ store })).toEqual({ ok: true, rows: 4 });
  });
});

describe("files 0600", () => {
  it("creates the database and its -wal and -shm files readable by their owner only, whatever the umask", async () => {
    const path = join(tempDir(), "sparekey.db");
    const old = process.umask(0o000);
    let store: KeyStore;
    try {
      store = openSqliteStore(path);
    } finally {
      process.umask(old);
    }
    onTestFinished(() => store.close());
    await store.addUser({ id: "alice", passwordHash: "scrypt$not-checked" }, "admin");
    for (const file of [path, `${path}-wal`, `${path}-shm`])
      expect({ file, mode: statSync(file).mode & 0o777 }).toEqual({ file, mode: 0o600 });
  });

  it("narrows the files an older sparekey left readable by others, while another process has them open", async () => {
    const path = join(tempDir(), "sparekey.db");
    await openSqliteStore(path).close();
    const other = new Database(path);
    onTestFinished(() => void other.close());
    other.prepare("SELECT count(*) FROM users").get();
    for (const file of [path, `${path}-wal`, `${path}-shm`]) chmodSync(file, 0o644);
    const store = reopen(path);
    await store.addUser({ id: "alice", passwordHash: "scrypt$not-checked" }, "admin");
    for (const file of [path, `${path}-wal`, `${path}-shm`])
      expect({ file, mode: statSync(file).mode & 0o777 }).toEqual({ file, mode: 0o600 });
  });
});
