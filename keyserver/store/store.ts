import type {
  AuditRow,
  GrantMode,
  GrantRow,
  RevocationStatus,
  SlotRow,
  TargetRecord,
  TerminalKind,
  UserRecord,
} from "../../schemas/keyserver.js";
import type { RegistryEntry, RevocationEntry, WeeklyWindow } from "../../schemas/tokens.js";

/**
 * The key server's system of record. Methods are coarse: each is one transaction that checks, changes
 * and writes its audit row together, so a second store (PostgreSQL) can implement the same contract.
 * Async so that such a store fits; failures are SparekeyErrors with stable codes.
 */
export interface KeyStore {
  close(): Promise<void>;
  /** Changes whenever any process committed a write; the registry publisher polls it. */
  changeToken(): Promise<string>;
  /** A fresh, persisted, strictly rising link epoch. */
  nextEpoch(): Promise<number>;
  /** Persist that epochs up to `epoch` were used (reconnects within one process). */
  raiseEpoch(epoch: number): Promise<void>;

  addUser(input: { id: string; passwordHash: string }, actor: string): Promise<void>;
  listUsers(): Promise<UserRecord[]>;

  addTerminal(input: { serial: string; user: string }, actor: string): Promise<void>;
  getTerminal(serial: string): Promise<TerminalRecord | undefined>;
  listTerminals(): Promise<TerminalRecord[]>;

  addTarget(input: { tid: string; secretHash: string; timeZone?: string }, actor: string): Promise<void>;
  listTargets(): Promise<TargetRecord[]>;
  /** A paired target's configured IANA zone (`{}` when it uses UTC); undefined when not paired. */
  targetZone(tid: string): Promise<{ time_zone?: string } | undefined>;

  createSlot(input: { slot: string; tids: string[] }, actor: string): Promise<SlotRecord>;
  getSlot(slot: string): Promise<SlotRecord | undefined>;
  listSlots(): Promise<SlotRecord[]>;

  addGrant(input: NewGrant, actor: string): Promise<void>;
  listGrants(): Promise<GrantRow[]>;
  /** Every grant of `user`, revoked ones included (so a caller can tell no_grant from grant_revoked). */
  grantsOf(user: string): Promise<GrantRow[]>;
  revokeGrant(input: { user: string; slot: string; mode: GrantMode }, actor: string): Promise<void>;

  /** The download op's whole decision and its effects (DESIGN §2: the new gen raises the floor). */
  issueStored(input: IssueStoredInput): Promise<Issued>;
  /** Register fob `fob` and issue it the next generation of `slot`. */
  issueFob(input: IssueFobInput, actor: string): Promise<Issued>;
  /** Revoke a slot, or raise its floor to `belowGen`. */
  revoke(input: { slot: string; belowGen?: number }, actor: string): Promise<SlotRecord>;

  /**
   * Revoke fleet-wide: the slot's own record changes as with `revoke`, and in the same transaction the
   * entry joins the fleet list and the fleet revocations version rises.
   */
  revokeFleet(input: { slot: string; belowGen?: number }, actor: string): Promise<RevocationsSnapshot>;
  /** The fleet list when its version was not yet published. */
  pendingRevocations(): Promise<RevocationsSnapshot | undefined>;
  markRevocationsPublished(version: number): Promise<void>;
  /** A target said it applied `version`; false when `tid` is not paired. Versions only rise. */
  confirmRevocations(tid: string, version: number): Promise<boolean>;
  revocationStatus(): Promise<RevocationStatus>;

  /** Registries whose version was not yet published, each read as one consistent snapshot. */
  pendingRegistries(): Promise<RegistrySnapshot[]>;
  markPublished(tid: string, version: number): Promise<void>;

  /** What the authenticator needs to check a CONNECT from `clientId`. */
  clientCredentials(clientId: string): Promise<ClientCredentials | undefined>;

  /** An audit row for an op that changed nothing (a refusal). */
  recordAudit(entry: AuditEntry): Promise<void>;
  listAudit(limit: number): Promise<AuditRow[]>;
}

export interface TerminalRecord {
  serial: string;
  kind: TerminalKind;
  /** Absent for a fob. */
  user?: string;
  /** Bound on first download (trust on first use). */
  public_key?: string;
  created: number;
  disabled: boolean;
}

export interface SlotRecord extends SlotRow {
  tids: string[];
}

export interface NewGrant {
  user: string;
  slot: string;
  mode: GrantMode;
  nbf?: number;
  exp?: number;
  max_uses?: number;
  schedule?: WeeklyWindow[];
  first_use_ttl_s?: number;
  unlock_password?: boolean;
}

export interface IssueStoredInput {
  term: string;
  publicKey: string;
  tid?: string;
  slot?: string;
  /** Unix seconds: the credential's iat. */
  now: number;
  jti: string;
}

export interface IssueFobInput {
  fob: string;
  secretHash: string;
  publicKey: string;
  slot: string;
  now: number;
  jti: string;
}

export interface Issued {
  slot: string;
  gen: number;
  tids: string[];
  nbf: number;
  exp?: number;
  max_uses?: number;
  schedule?: WeeklyWindow[];
  first_use_ttl_s?: number;
}

export interface RevocationsSnapshot {
  version: number;
  revoked: RevocationEntry[];
}

export interface RegistrySnapshot {
  tid: string;
  version: number;
  slots: RegistryEntry[];
}

export type ClientCredentials =
  | { kind: "target"; secretHash: string }
  | { kind: "fob"; secretHash: string; disabled: boolean }
  | { kind: "phone"; user: string; passwordHash: string; disabled: boolean };

export interface AuditEntry {
  actor: string;
  op: string;
  subject: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

/** Ids starting with this are the key servers' own client ids. */
export const RESERVED_ID_PREFIX = "keyserver";
