import { type Static, type TSchema, Type } from "@sinclair/typebox";
import Database from "better-sqlite3";
import { SparekeyError } from "../../common/errors.js";
import { Id } from "../../schemas/common.js";
import {
  AuditRow,
  type GrantMode,
  GrantRow,
  type RevocationStatus,
  SlotRow,
  TargetRecord,
  TerminalRow,
  UserRecord,
} from "../../schemas/keyserver.js";
import { RegistryEntry, RevocationEntry, WeeklyWindow } from "../../schemas/tokens.js";
import { assertId } from "../../schemas/topics.js";
import { validator } from "../../schemas/validate.js";
import type {
  AuditEntry,
  ClientCredentials,
  Issued,
  IssueFobInput,
  IssueStoredInput,
  KeyStore,
  NewGrant,
  RegistrySnapshot,
  RevocationsSnapshot,
  SlotRecord,
  TerminalRecord,
} from "./store.js";
import { RESERVED_ID_PREFIX } from "./store.js";

/** Schema migrations, applied in order; `PRAGMA user_version` is how many have run. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
  CREATE TABLE users (id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created INTEGER NOT NULL) STRICT;
  CREATE TABLE terminals (
    serial TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users(id),
    kind TEXT NOT NULL CHECK (kind IN ('phone', 'fob')),
    secret_hash TEXT,
    public_key TEXT,
    created INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    CHECK ((kind = 'phone' AND user_id IS NOT NULL) OR (kind = 'fob' AND secret_hash IS NOT NULL))
  ) STRICT;
  CREATE TABLE targets (
    tid TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    created INTEGER NOT NULL,
    registry_version INTEGER NOT NULL,
    published_version INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE TABLE slots (
    slot TEXT PRIMARY KEY,
    gen INTEGER NOT NULL DEFAULT 0,
    min_gen INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    created INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE slot_targets (
    slot TEXT NOT NULL REFERENCES slots(slot),
    tid TEXT NOT NULL REFERENCES targets(tid),
    PRIMARY KEY (slot, tid)
  ) STRICT;
  CREATE INDEX slot_targets_tid ON slot_targets(tid);
  CREATE TABLE grants (
    user_id TEXT NOT NULL REFERENCES users(id),
    slot TEXT NOT NULL REFERENCES slots(slot),
    mode TEXT NOT NULL CHECK (mode IN ('stored', 'relay')),
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    nbf INTEGER,
    exp INTEGER,
    max_uses INTEGER,
    created INTEGER NOT NULL,
    PRIMARY KEY (user_id, slot, mode)
  ) STRICT;
  CREATE TABLE credentials (
    jti TEXT PRIMARY KEY,
    slot TEXT NOT NULL REFERENCES slots(slot),
    gen INTEGER NOT NULL,
    term TEXT NOT NULL REFERENCES terminals(serial),
    mode TEXT NOT NULL,
    holder TEXT,
    iat INTEGER NOT NULL,
    nbf INTEGER NOT NULL,
    exp INTEGER,
    max_uses INTEGER
  ) STRICT;
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER NOT NULL,
    actor TEXT NOT NULL,
    op TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
  ) STRICT;
  CREATE INDEX targets_pending ON targets(tid) WHERE registry_version > published_version;
  `,
  // Issues 3 and 4: grants with limits, target zones, fleet revocations and their confirmations.
  `
  ALTER TABLE grants ADD COLUMN schedule TEXT;
  ALTER TABLE grants ADD COLUMN first_use_ttl_s INTEGER;
  ALTER TABLE grants ADD COLUMN unlock_password INTEGER NOT NULL DEFAULT 0 CHECK (unlock_password IN (0, 1));
  ALTER TABLE credentials ADD COLUMN schedule TEXT;
  ALTER TABLE credentials ADD COLUMN first_use_ttl_s INTEGER;
  ALTER TABLE targets ADD COLUMN time_zone TEXT;
  CREATE TABLE fleet_revocations (
    slot TEXT PRIMARY KEY,
    below_gen INTEGER,
    version INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE revocation_acks (
    tid TEXT PRIMARY KEY REFERENCES targets(tid),
    version INTEGER NOT NULL,
    ts INTEGER NOT NULL
  ) STRICT;
  `,
];

const SecretRow = Type.Object({ secret_hash: Type.String() }, { additionalProperties: false });
const PhoneAuthRow = Type.Object(
  {
    kind: Type.String(),
    user_id: Type.Union([Id, Type.Null()]),
    secret_hash: Type.Union([Type.String(), Type.Null()]),
    password_hash: Type.Union([Type.String(), Type.Null()]),
    disabled: Type.Union([Type.Literal(0), Type.Literal(1)]),
  },
  { additionalProperties: false },
);
const TidRow = Type.Object({ tid: Id }, { additionalProperties: false });
const PendingRow = Type.Object({ tid: Id, registry_version: Type.Integer({ minimum: 1 }) });
const EpochRow = Type.Object({ value: Type.Integer({ minimum: 0 }) });
const ZoneRow = Type.Object({
  time_zone: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()]),
});
const AckRow = Type.Object({ tid: Id, version: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]) });
/** A grant as stored: the schedule is a JSON text, flags are integers. */
const GrantDbRow = Type.Object({
  ...Type.Omit(GrantRow, ["schedule", "unlock_password"]).properties,
  schedule: Type.Union([Type.String({ maxLength: 4096 }), Type.Null()]),
  unlock_password: Type.Union([Type.Literal(0), Type.Literal(1)]),
});
const Schedule = Type.Array(WeeklyWindow, { minItems: 1, maxItems: 16 });

function toGrant(r: Static<typeof GrantDbRow>): GrantRow {
  const schedule = r.schedule === null ? null : row(Schedule, parseJsonText(r.schedule), "grant schedule");
  return { ...r, schedule, unlock_password: r.unlock_password === 1 };
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const META_REVOCATIONS = "revocations_version";
const META_REVOCATIONS_PUBLISHED = "revocations_published";

function row<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  return validator(schema, what).parse(value);
}
function maybeRow<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> | undefined {
  return value === undefined ? undefined : row(schema, value, what);
}
function rows<S extends TSchema>(schema: S, values: unknown[], what: string): Static<S>[] {
  const v = validator(schema, what);
  return values.map((x) => v.parse(x));
}

function toTerminal(r: TerminalRow): TerminalRecord {
  return {
    serial: r.serial,
    kind: r.kind,
    ...(r.user_id !== null ? { user: r.user_id } : {}),
    ...(r.public_key !== null ? { public_key: r.public_key } : {}),
    created: r.created,
    disabled: r.disabled === 1,
  };
}

export interface SqliteStoreOptions {
  /** Unix milliseconds; tests pass a fixed clock. */
  now?: () => number;
}

/** KeyStore on one SQLite file (better-sqlite3: synchronous, so each method is one real transaction). */
export class SqliteStore implements KeyStore {
  /** Commits made through this connection (data_version only counts other connections). */
  private localWrites = 0;

  private constructor(
    private readonly db: Database.Database,
    private readonly now: () => number,
  ) {}

  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const db = new Database(path);
    try {
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      db.pragma("foreign_keys = ON");
      // An admin command in another process may hold the write lock for a moment.
      db.pragma("busy_timeout = 5000");
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(db, options.now ?? Date.now);
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** One IMMEDIATE transaction (takes the write lock at once, so checks and writes see one state). */
  private write<T>(fn: () => T): T {
    const result = this.db.transaction(fn).immediate();
    this.localWrites += 1;
    return result;
  }

  private audit(e: AuditEntry): void {
    this.db
      .prepare("INSERT INTO audit (ts, actor, op, subject, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)")
      .run(this.now(), e.actor, e.op, e.subject, e.outcome, JSON.stringify(e.detail ?? {}));
  }

  /** Run a write op; a refusal (SparekeyError) still leaves an audit row naming its code. */
  private audited<T>(
    e: Omit<AuditEntry, "outcome">,
    fn: () => T,
    detailOf?: (result: T) => Record<string, unknown>,
  ): T {
    try {
      return this.write(() => {
        const result = fn();
        this.audit({ ...e, outcome: "ok", detail: { ...e.detail, ...detailOf?.(result) } });
        return result;
      });
    } catch (err) {
      if (err instanceof SparekeyError) this.write(() => this.audit({ ...e, outcome: err.code }));
      throw err;
    }
  }

  private assertNewClientId(id: string, what: string): void {
    assertId(id, what);
    if (id.startsWith(RESERVED_ID_PREFIX))
      throw new SparekeyError(
        "forbidden",
        `${what} ${id}: ids starting with ${RESERVED_ID_PREFIX} are reserved`,
      );
    const taken =
      this.db.prepare("SELECT 1 FROM terminals WHERE serial = ?").get(id) !== undefined ||
      this.db.prepare("SELECT 1 FROM targets WHERE tid = ?").get(id) !== undefined;
    // Terminals and targets share one client id namespace (they are MQTT client ids).
    if (taken) throw new SparekeyError("already_exists", `${what} ${id}: id already in use`);
  }

  private requireUser(id: string): void {
    if (this.db.prepare("SELECT 1 FROM users WHERE id = ?").get(id) === undefined)
      throw new SparekeyError("not_found", `user ${id} not found`);
  }

  private slotRecord(slot: string): SlotRecord | undefined {
    const r = maybeRow(SlotRow, this.db.prepare("SELECT * FROM slots WHERE slot = ?").get(slot), "slot row");
    if (!r) return undefined;
    const tids = rows(
      TidRow,
      this.db.prepare("SELECT tid FROM slot_targets WHERE slot = ? ORDER BY tid").all(slot),
      "slot target row",
    );
    return { ...r, tids: tids.map((t) => t.tid) };
  }

  private requireSlot(slot: string): SlotRecord {
    const s = this.slotRecord(slot);
    if (!s) throw new SparekeyError("not_found", `slot ${slot} not found`);
    return s;
  }

  private bumpRegistries(slot: string): void {
    this.db
      .prepare(
        "UPDATE targets SET registry_version = registry_version + 1 WHERE tid IN (SELECT tid FROM slot_targets WHERE slot = ?)",
      )
      .run(slot);
  }

  /** The next generation of `slot`, which is also its new floor: older holders stop working. */
  private issueNextGen(
    slot: SlotRecord,
    c: {
      jti: string;
      term: string;
      mode: string;
      holder: string;
      now: number;
      nbf: number;
      exp?: number;
      max_uses?: number;
      schedule?: WeeklyWindow[];
      first_use_ttl_s?: number;
    },
  ): Issued {
    if (slot.status !== "active") throw new SparekeyError("forbidden", `slot ${slot.slot} is ${slot.status}`);
    const gen = slot.gen + 1;
    this.db.prepare("UPDATE slots SET gen = ?, min_gen = ? WHERE slot = ?").run(gen, gen, slot.slot);
    this.bumpRegistries(slot.slot);
    this.db
      .prepare(
        "INSERT INTO credentials (jti, slot, gen, term, mode, holder, iat, nbf, exp, max_uses, schedule, first_use_ttl_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      )
      .run(
        c.jti,
        slot.slot,
        gen,
        c.term,
        c.mode,
        c.holder,
        c.now,
        c.nbf,
        c.exp ?? null,
        c.max_uses ?? null,
        c.schedule ? JSON.stringify(c.schedule) : null,
        c.first_use_ttl_s ?? null,
      );
    return {
      slot: slot.slot,
      gen,
      tids: slot.tids,
      nbf: c.nbf,
      ...(c.exp !== undefined ? { exp: c.exp } : {}),
      ...(c.max_uses !== undefined ? { max_uses: c.max_uses } : {}),
      ...(c.schedule !== undefined ? { schedule: c.schedule } : {}),
      ...(c.first_use_ttl_s !== undefined ? { first_use_ttl_s: c.first_use_ttl_s } : {}),
    };
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async changeToken(): Promise<string> {
    return `${String(this.db.pragma("data_version", { simple: true }))}:${this.localWrites}`;
  }

  async nextEpoch(): Promise<number> {
    return this.write(() => {
      const current = maybeRow(
        EpochRow,
        this.db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get(),
        "meta row",
      );
      const next = (current?.value ?? 0) + 1;
      this.db
        .prepare(
          "INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )
        .run(next);
      return next;
    });
  }

  async raiseEpoch(epoch: number): Promise<void> {
    this.write(() =>
      this.db
        .prepare(
          "INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
        )
        .run(epoch),
    );
  }

  async addUser(input: { id: string; passwordHash: string }, actor: string): Promise<void> {
    assertId(input.id, "user");
    this.audited({ actor, op: "user.add", subject: input.id }, () => {
      if (this.db.prepare("SELECT 1 FROM users WHERE id = ?").get(input.id) !== undefined)
        throw new SparekeyError("already_exists", `user ${input.id} already exists`);
      this.db
        .prepare("INSERT INTO users (id, password_hash, created) VALUES (?, ?, ?)")
        .run(input.id, input.passwordHash, this.seconds());
    });
  }

  async listUsers() {
    return rows(UserRecord, this.db.prepare("SELECT id, created FROM users ORDER BY id").all(), "user row");
  }

  async addTerminal(input: { serial: string; user: string }, actor: string): Promise<void> {
    assertId(input.serial, "serial");
    this.audited({ actor, op: "terminal.add", subject: input.serial, detail: { user: input.user } }, () => {
      this.assertNewClientId(input.serial, "terminal");
      this.requireUser(input.user);
      this.db
        .prepare("INSERT INTO terminals (serial, user_id, kind, created) VALUES (?, ?, 'phone', ?)")
        .run(input.serial, input.user, this.seconds());
    });
  }

  async getTerminal(serial: string): Promise<TerminalRecord | undefined> {
    return this.getTerminalSync(serial);
  }

  async listTerminals(): Promise<TerminalRecord[]> {
    return rows(
      TerminalRow,
      this.db
        .prepare("SELECT serial, user_id, kind, public_key, created, disabled FROM terminals ORDER BY serial")
        .all(),
      "terminal row",
    ).map(toTerminal);
  }

  async addTarget(
    input: { tid: string; secretHash: string; timeZone?: string },
    actor: string,
  ): Promise<void> {
    assertId(input.tid, "tid");
    const detail = input.timeZone !== undefined ? { time_zone: input.timeZone } : {};
    this.audited({ actor, op: "target.pair", subject: input.tid, detail }, () => {
      this.assertNewClientId(input.tid, "target");
      // Version 1 unpublished: the target gets its (empty) registry as soon as the publisher runs.
      this.db
        .prepare(
          "INSERT INTO targets (tid, secret_hash, created, registry_version, published_version, time_zone) VALUES (?, ?, ?, 1, 0, ?)",
        )
        .run(input.tid, input.secretHash, this.seconds(), input.timeZone ?? null);
    });
  }

  async listTargets() {
    return rows(
      TargetRecord,
      this.db
        .prepare("SELECT tid, created, registry_version, published_version FROM targets ORDER BY tid")
        .all(),
      "target row",
    );
  }

  async targetZone(tid: string): Promise<{ time_zone?: string } | undefined> {
    const r = maybeRow(
      ZoneRow,
      this.db.prepare("SELECT time_zone FROM targets WHERE tid = ?").get(tid),
      "target row",
    );
    if (!r) return undefined;
    return r.time_zone === null ? {} : { time_zone: r.time_zone };
  }

  async createSlot(input: { slot: string; tids: string[] }, actor: string): Promise<SlotRecord> {
    assertId(input.slot, "slot");
    for (const tid of input.tids) assertId(tid, "tid");
    const tids = [...new Set(input.tids)].sort();
    if (tids.length === 0) throw new SparekeyError("bad_request", "a slot needs at least one target");
    return this.audited({ actor, op: "slot.create", subject: input.slot, detail: { tids } }, () => {
      if (this.slotRecord(input.slot))
        throw new SparekeyError("already_exists", `slot ${input.slot} already exists`);
      for (const tid of tids)
        if (this.db.prepare("SELECT 1 FROM targets WHERE tid = ?").get(tid) === undefined)
          throw new SparekeyError("not_found", `target ${tid} not found`);
      this.db
        .prepare("INSERT INTO slots (slot, gen, min_gen, status, created) VALUES (?, 0, 1, 'active', ?)")
        .run(input.slot, this.seconds());
      const link = this.db.prepare("INSERT INTO slot_targets (slot, tid) VALUES (?, ?)");
      for (const tid of tids) link.run(input.slot, tid);
      this.bumpRegistries(input.slot);
      return this.requireSlot(input.slot);
    });
  }

  async getSlot(slot: string): Promise<SlotRecord | undefined> {
    return this.slotRecord(slot);
  }

  async listSlots(): Promise<SlotRecord[]> {
    const all = rows(SlotRow, this.db.prepare("SELECT * FROM slots ORDER BY slot").all(), "slot row");
    return all.map((s) => this.requireSlot(s.slot));
  }

  async addGrant(input: NewGrant, actor: string): Promise<void> {
    const detail = {
      slot: input.slot,
      mode: input.mode,
      nbf: input.nbf,
      exp: input.exp,
      max_uses: input.max_uses,
      schedule: input.schedule,
      first_use_ttl_s: input.first_use_ttl_s,
      unlock_password: input.unlock_password,
    };
    if (input.schedule !== undefined) row(Schedule, input.schedule, "grant schedule");
    this.audited({ actor, op: "grant.add", subject: input.user, detail }, () => {
      this.requireUser(input.user);
      this.requireSlot(input.slot);
      const exists = this.db
        .prepare("SELECT 1 FROM grants WHERE user_id = ? AND slot = ? AND mode = ?")
        .get(input.user, input.slot, input.mode);
      if (exists !== undefined)
        throw new SparekeyError(
          "already_exists",
          `user ${input.user} already holds a ${input.mode} grant on ${input.slot}`,
        );
      this.db
        .prepare(
          "INSERT INTO grants (user_id, slot, mode, status, nbf, exp, max_uses, created, schedule, first_use_ttl_s, unlock_password) VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)",
        )
        .run(
          input.user,
          input.slot,
          input.mode,
          input.nbf ?? null,
          input.exp ?? null,
          input.max_uses ?? null,
          this.seconds(),
          input.schedule !== undefined ? JSON.stringify(input.schedule) : null,
          input.first_use_ttl_s ?? null,
          input.unlock_password === true ? 1 : 0,
        );
    });
  }

  async listGrants(): Promise<GrantRow[]> {
    return rows(
      GrantDbRow,
      this.db.prepare("SELECT * FROM grants ORDER BY user_id, slot, mode").all(),
      "grant row",
    ).map(toGrant);
  }

  async grantsOf(user: string): Promise<GrantRow[]> {
    return this.grantsOfSync(user, "SELECT * FROM grants WHERE user_id = ? ORDER BY slot, mode");
  }

  private grantsOfSync(user: string, sql: string): GrantRow[] {
    return rows(GrantDbRow, this.db.prepare(sql).all(user), "grant row").map(toGrant);
  }

  async revokeGrant(input: { user: string; slot: string; mode: GrantMode }, actor: string): Promise<void> {
    this.audited(
      { actor, op: "grant.revoke", subject: input.user, detail: { slot: input.slot, mode: input.mode } },
      () => {
        const changed = this.db
          .prepare("UPDATE grants SET status = 'revoked' WHERE user_id = ? AND slot = ? AND mode = ?")
          .run(input.user, input.slot, input.mode).changes;
        if (changed === 0)
          throw new SparekeyError(
            "not_found",
            `user ${input.user} holds no ${input.mode} grant on ${input.slot}`,
          );
      },
    );
  }

  async issueStored(input: IssueStoredInput): Promise<Issued> {
    const detail = { slot: input.slot, tid: input.tid };
    return this.audited(
      { actor: input.term, op: "credential.download", subject: input.term, detail },
      () => {
        const terminal = this.getTerminalSync(input.term);
        if (terminal?.kind !== "phone" || terminal.disabled || terminal.user === undefined)
          throw new SparekeyError("forbidden", "caller is not an enabled phone terminal");
        if (terminal.public_key !== undefined && terminal.public_key !== input.publicKey)
          throw new SparekeyError("terminal_key_mismatch", "this terminal is bound to another public key");
        const grants = this.grantsOfSync(
          terminal.user,
          "SELECT * FROM grants WHERE user_id = ? AND mode = 'stored' AND status = 'active' ORDER BY slot",
        ).filter(
          (g) => (g.exp === null || g.exp > input.now) && (input.slot === undefined || g.slot === input.slot),
        );
        const candidates = grants
          .map((g) => ({ grant: g, slot: this.requireSlot(g.slot) }))
          .filter((c) => input.tid === undefined || c.slot.tids.includes(input.tid));
        const [chosen, ...others] = candidates;
        if (!chosen) throw new SparekeyError("no_grant", "no active stored grant covers this request");
        if (others.length > 0)
          throw new SparekeyError("bad_request", "several granted slots match; name the slot");
        if (terminal.public_key === undefined)
          this.db
            .prepare("UPDATE terminals SET public_key = ? WHERE serial = ?")
            .run(input.publicKey, input.term);
        const g = chosen.grant;
        // The target counts uses and first use per generation, and every download is a new one: a
        // use-limited grant downloaded again would start its count afresh, so it is downloaded once.
        if (
          (g.max_uses !== null || g.first_use_ttl_s !== null) &&
          this.downloadedBefore(terminal.user, g.slot)
        )
          throw new SparekeyError(
            "grant_used",
            `the use-limited grant on ${g.slot} was downloaded already; an admin can grant a new slot`,
          );
        const issued = this.issueNextGen(chosen.slot, {
          jti: input.jti,
          term: input.term,
          mode: "stored",
          holder: input.publicKey,
          now: input.now,
          nbf: Math.max(input.now, g.nbf ?? 0),
          ...(g.exp !== null ? { exp: g.exp } : {}),
          ...(g.max_uses !== null ? { max_uses: g.max_uses } : {}),
          ...(g.schedule !== null ? { schedule: g.schedule } : {}),
          ...(g.first_use_ttl_s !== null ? { first_use_ttl_s: g.first_use_ttl_s } : {}),
        });
        return issued;
      },
      (issued) => ({ slot: issued.slot, gen: issued.gen, jti: input.jti }),
    );
  }

  private downloadedBefore(user: string, slot: string): boolean {
    const hit = this.db
      .prepare(
        "SELECT 1 FROM credentials c JOIN terminals t ON t.serial = c.term WHERE c.slot = ? AND t.user_id = ? AND c.mode = 'stored' LIMIT 1",
      )
      .get(slot, user);
    return hit !== undefined;
  }

  private getTerminalSync(serial: string): TerminalRecord | undefined {
    const r = maybeRow(
      TerminalRow,
      this.db
        .prepare(
          "SELECT serial, user_id, kind, public_key, created, disabled FROM terminals WHERE serial = ?",
        )
        .get(serial),
      "terminal row",
    );
    return r ? toTerminal(r) : undefined;
  }

  async issueFob(input: IssueFobInput, actor: string): Promise<Issued> {
    return this.audited(
      { actor, op: "fob.write", subject: input.fob, detail: { slot: input.slot } },
      () => {
        this.assertNewClientId(input.fob, "fob");
        const slot = this.requireSlot(input.slot);
        this.db
          .prepare(
            "INSERT INTO terminals (serial, user_id, kind, secret_hash, public_key, created) VALUES (?, NULL, 'fob', ?, ?, ?)",
          )
          .run(input.fob, input.secretHash, input.publicKey, this.seconds());
        const issued = this.issueNextGen(slot, {
          jti: input.jti,
          term: input.fob,
          mode: "fob",
          holder: input.publicKey,
          now: input.now,
          nbf: input.now,
        });
        return issued;
      },
      (issued) => ({ gen: issued.gen, jti: input.jti }),
    );
  }

  async revoke(input: { slot: string; belowGen?: number }, actor: string): Promise<SlotRecord> {
    return this.audited(
      { actor, op: "slot.revoke", subject: input.slot, detail: { below_gen: input.belowGen } },
      () => this.revokeSlotSync(input),
    );
  }

  private revokeSlotSync(input: { slot: string; belowGen?: number }): SlotRecord {
    const slot = this.requireSlot(input.slot);
    if (input.belowGen === undefined) {
      this.db.prepare("UPDATE slots SET status = 'revoked' WHERE slot = ?").run(slot.slot);
    } else {
      if (input.belowGen < slot.min_gen)
        throw new SparekeyError(
          "bad_request",
          `below-gen ${input.belowGen} would lower the floor ${slot.min_gen}`,
        );
      if (input.belowGen > slot.gen + 1)
        throw new SparekeyError("bad_request", `below-gen must be at most ${slot.gen + 1} (next generation)`);
      this.db.prepare("UPDATE slots SET min_gen = ? WHERE slot = ?").run(input.belowGen, slot.slot);
    }
    this.bumpRegistries(slot.slot);
    return this.requireSlot(slot.slot);
  }

  async revokeFleet(input: { slot: string; belowGen?: number }, actor: string): Promise<RevocationsSnapshot> {
    return this.audited(
      { actor, op: "fleet.revoke", subject: input.slot, detail: { below_gen: input.belowGen } },
      () => {
        this.revokeSlotSync(input);
        const version = this.metaValue(META_REVOCATIONS) + 1;
        this.setMeta(META_REVOCATIONS, version);
        // One entry per slot: a whole-slot revocation (NULL) wins over any floor, floors only rise.
        this.db
          .prepare(
            `INSERT INTO fleet_revocations (slot, below_gen, version) VALUES (?, ?, ?)
             ON CONFLICT(slot) DO UPDATE SET
               below_gen = CASE WHEN below_gen IS NULL OR excluded.below_gen IS NULL THEN NULL
                                ELSE MAX(below_gen, excluded.below_gen) END,
               version = excluded.version`,
          )
          .run(input.slot, input.belowGen ?? null, version);
        return this.revocationsSnapshot(version);
      },
      (snapshot) => ({ version: snapshot.version }),
    );
  }

  private metaValue(key: string): number {
    const r = maybeRow(
      EpochRow,
      this.db.prepare("SELECT value FROM meta WHERE key = ?").get(key),
      "meta row",
    );
    return r?.value ?? 0;
  }

  private setMeta(key: string, value: number): void {
    this.db
      .prepare(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      )
      .run(key, value);
  }

  private revocationsSnapshot(version: number): RevocationsSnapshot {
    const entries = rows(
      Type.Object({ slot: Id, below_gen: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]) }),
      this.db.prepare("SELECT slot, below_gen FROM fleet_revocations ORDER BY slot").all(),
      "fleet revocation row",
    );
    const revoked = entries.map((e) =>
      row(
        RevocationEntry,
        e.below_gen === null ? { slot: e.slot } : { slot: e.slot, below_gen: e.below_gen },
        "fleet revocation",
      ),
    );
    return { version, revoked };
  }

  async pendingRevocations(): Promise<RevocationsSnapshot | undefined> {
    return this.db.transaction(() => {
      const version = this.metaValue(META_REVOCATIONS);
      if (version === 0 || version <= this.metaValue(META_REVOCATIONS_PUBLISHED)) return undefined;
      return this.revocationsSnapshot(version);
    })();
  }

  async markRevocationsPublished(version: number): Promise<void> {
    // Not counted in localWrites, like markPublished.
    this.db
      .prepare(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
      )
      .run(META_REVOCATIONS_PUBLISHED, version);
  }

  async confirmRevocations(tid: string, version: number): Promise<boolean> {
    return this.write(() => {
      if (this.db.prepare("SELECT 1 FROM targets WHERE tid = ?").get(tid) === undefined) return false;
      this.db
        .prepare(
          `INSERT INTO revocation_acks (tid, version, ts) VALUES (?, ?, ?)
           ON CONFLICT(tid) DO UPDATE SET version = MAX(version, excluded.version),
             ts = CASE WHEN excluded.version > version THEN excluded.ts ELSE ts END`,
        )
        .run(tid, version, this.now());
      return true;
    });
  }

  async revocationStatus(): Promise<RevocationStatus> {
    return this.db.transaction(() => {
      const version = this.metaValue(META_REVOCATIONS);
      const published = version > 0 && this.metaValue(META_REVOCATIONS_PUBLISHED) >= version;
      const acks = rows(
        AckRow,
        this.db
          .prepare(
            "SELECT t.tid AS tid, a.version AS version FROM targets t LEFT JOIN revocation_acks a ON a.tid = t.tid ORDER BY t.tid",
          )
          .all(),
        "revocation ack row",
      );
      return {
        version,
        published,
        revoked: this.revocationsSnapshot(version).revoked,
        targets: acks.map((a) => ({
          tid: a.tid,
          status:
            version === 0 || (a.version !== null && a.version >= version)
              ? ("confirmed" as const)
              : ("pending" as const),
          confirmed_version: a.version,
        })),
      };
    })();
  }

  async pendingRegistries(): Promise<RegistrySnapshot[]> {
    // A deferred read transaction: the versions and the slots are one snapshot.
    return this.db.transaction(() => {
      const pending = rows(
        PendingRow,
        this.db
          .prepare(
            "SELECT tid, registry_version FROM targets WHERE registry_version > published_version ORDER BY tid",
          )
          .all(),
        "target row",
      );
      const entries = this.db.prepare(
        "SELECT s.slot AS slot, s.min_gen AS min_gen, s.status AS status FROM slot_targets st JOIN slots s ON s.slot = st.slot WHERE st.tid = ? ORDER BY s.slot",
      );
      return pending.map((p) => ({
        tid: p.tid,
        version: p.registry_version,
        slots: rows(RegistryEntry, entries.all(p.tid), "registry entry"),
      }));
    })();
  }

  async markPublished(tid: string, version: number): Promise<void> {
    // Not counted in localWrites: publishing must not wake the publisher again.
    this.db
      .prepare("UPDATE targets SET published_version = MAX(published_version, ?) WHERE tid = ?")
      .run(version, tid);
  }

  async clientCredentials(clientId: string): Promise<ClientCredentials | undefined> {
    const target = maybeRow(
      SecretRow,
      this.db.prepare("SELECT secret_hash FROM targets WHERE tid = ?").get(clientId),
      "target row",
    );
    if (target) return { kind: "target", secretHash: target.secret_hash };
    const t = maybeRow(
      PhoneAuthRow,
      this.db
        .prepare(
          "SELECT t.kind AS kind, t.user_id AS user_id, t.secret_hash AS secret_hash, u.password_hash AS password_hash, t.disabled AS disabled FROM terminals t LEFT JOIN users u ON u.id = t.user_id WHERE t.serial = ?",
        )
        .get(clientId),
      "terminal row",
    );
    if (!t) return undefined;
    if (t.kind === "fob" && t.secret_hash !== null)
      return { kind: "fob", secretHash: t.secret_hash, disabled: t.disabled === 1 };
    if (t.kind === "phone" && t.user_id !== null && t.password_hash !== null)
      return { kind: "phone", user: t.user_id, passwordHash: t.password_hash, disabled: t.disabled === 1 };
    return undefined;
  }

  async recordAudit(entry: AuditEntry): Promise<void> {
    this.write(() => this.audit(entry));
  }

  async listAudit(limit: number): Promise<AuditRow[]> {
    const recent = rows(
      AuditRow,
      this.db.prepare("SELECT * FROM audit ORDER BY seq DESC LIMIT ?").all(limit),
      "audit row",
    );
    return recent.reverse();
  }
}

function migrate(db: Database.Database): void {
  const version = Number(db.pragma("user_version", { simple: true }));
  if (!Number.isInteger(version) || version > MIGRATIONS.length)
    throw new SparekeyError("config_invalid", "the database was written by a newer sparekey");
  if (version === MIGRATIONS.length) return;
  db.transaction(() => {
    for (const sql of MIGRATIONS.slice(version)) db.exec(sql);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  }).immediate();
}
