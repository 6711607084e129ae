import { type TSchema, Type } from "@sinclair/typebox";
import { describe, expect, it } from "vitest";
import { FobFile, TargetConfig, TerminalProfile } from "../../schemas/config.js";
import { Challenge, KeyserverStatus, LinkStatus, TargetEvent, TargetState } from "../../schemas/messages.js";
import { REFUSAL_REASONS, STATE_REASONS } from "../../schemas/reasons.js";
import { TargetStateFile } from "../../schemas/records.js";
import { DownloadRequest, RpcReply } from "../../schemas/rpc.js";
import {
  CredentialPayload,
  FramePayload,
  RegistryPayload,
  RelayPayload,
  RevocationsPayload,
  UnlockPayload,
} from "../../schemas/tokens.js";
import { configValidator, SchemaError, validator } from "../../schemas/validate.js";

const NONCE = "AAECAwQFBgcICQoLDA0ODw";
const KEY = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w";
const TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJ2IjoxfQ.c2ln";
const SECS = 1_767_225_600;
const MILLIS = 1_767_225_600_000;
const SECRET = "s".repeat(32);

type Path = readonly (string | number)[];

interface Fixture {
  name: string;
  schema: TSchema;
  valid: Record<string, unknown>;
  /** Paths whose value is an id (docs/PROTOCOL.md, ids: `^[A-Za-z0-9_-]{1,64}$`). */
  ids: Path[];
  /** Members whose schema accepts any JSON type. */
  anyType?: string[];
}

const fixtures: Fixture[] = [
  {
    name: "Challenge",
    schema: Challenge,
    valid: { v: 1, tid: "lock-1", nonce: NONCE, period_ms: 1000, ts: MILLIS },
    ids: [["tid"]],
  },
  {
    name: "TargetState",
    schema: TargetState,
    valid: {
      v: 1,
      tid: "lock-1",
      state: "available",
      slot: "front-door",
      term: "phone-1",
      since: MILLIS,
      reason: "frame_accepted",
    },
    ids: [["tid"], ["slot"], ["term"]],
  },
  {
    name: "TargetEvent",
    schema: TargetEvent,
    valid: {
      v: 1,
      tid: "lock-1",
      ts: MILLIS,
      type: "auth_refused",
      reason: "stale_nonce",
      slot: "front-door",
      term: "phone-1",
      gen: 2,
      version: 3,
      uses_left: 0,
    },
    ids: [["tid"], ["slot"], ["term"]],
  },
  {
    name: "LinkStatus",
    schema: LinkStatus,
    valid: { v: 1, state: "offline", epoch: 7 },
    ids: [],
  },
  {
    name: "KeyserverStatus",
    schema: KeyserverStatus,
    valid: { v: 1, state: "online", epoch: 7, kid: "A".repeat(43) },
    ids: [],
  },
  {
    name: "RpcReply",
    schema: RpcReply,
    valid: {
      v: 1,
      id: "req-1",
      ok: false,
      result: { any: "thing" },
      error: { code: "no_grant", message: "no" },
    },
    ids: [],
    anyType: ["result"],
  },
  {
    name: "DownloadRequest",
    schema: DownloadRequest,
    valid: { v: 1, id: "req-1", public_key: KEY, tid: "lock-1", slot: "front-door" },
    ids: [["tid"], ["slot"]],
  },
  {
    name: "CredentialPayload",
    schema: CredentialPayload,
    valid: {
      v: 1,
      slot: "front-door",
      gen: 2,
      tids: ["lock-1", "lock-2"],
      mode: "fob",
      holder: KEY,
      term: "fob-7",
      nbf: SECS,
      exp: SECS + 60,
      max_uses: 10,
      iat: SECS,
      jti: "jti-0000000000000001",
    },
    ids: [["slot"], ["tids", 1], ["term"]],
  },
  {
    name: "FramePayload",
    schema: FramePayload,
    valid: { v: 1, tid: "lock-1", slot: "front-door", term: "phone-1", nonce: NONCE, seq: 1, cred: TOKEN },
    ids: [["tid"], ["slot"], ["term"]],
  },
  {
    name: "RelayPayload",
    schema: RelayPayload,
    valid: {
      v: 1,
      tid: "lock-1",
      slot: "front-door",
      gen: 2,
      term: "phone-1",
      epoch: 1_700_000_000_000,
      nonce: NONCE,
      seq: 9,
      iat: SECS,
    },
    ids: [["tid"], ["slot"], ["term"]],
  },
  {
    name: "RegistryPayload",
    schema: RegistryPayload,
    valid: {
      v: 1,
      tid: "lock-1",
      version: 3,
      slots: [
        { slot: "front-door", min_gen: 2, status: "active" },
        { slot: "cleaner", min_gen: 1, status: "suspended", nbf: SECS, exp: SECS + 60, max_uses: 5 },
      ],
      iat: SECS,
    },
    ids: [["tid"], ["slots", 1, "slot"]],
  },
  {
    name: "RevocationsPayload",
    schema: RevocationsPayload,
    valid: {
      v: 1,
      version: 5,
      revoked: [{ slot: "old-fob" }, { slot: "front-door", below_gen: 2 }],
      iat: SECS,
    },
    ids: [["revoked", 0, "slot"]],
  },
  {
    name: "UnlockPayload",
    schema: UnlockPayload,
    valid: {
      v: 1,
      tid: "lock-1",
      nonce: NONCE,
      cmd_id: "cmd-0000000000000001",
      term: "phone-1",
      duration_ms: 5000,
      iat: SECS,
      exp: SECS + 30,
    },
    ids: [["tid"], ["term"]],
  },
  {
    name: "TargetConfig",
    schema: TargetConfig,
    valid: {
      v: 1,
      tid: "lock-1",
      broker_url: "mqtt://127.0.0.1:18830",
      secret: SECRET,
      prefix: "sparekey/v1",
      issuer_keys: [{ kid: "UDDReOZl1ipXAfp9wYsm13sDBMK5og--QWdBjzuf6o4", public_key: KEY }],
      period_ms: 1000,
      timeout_periods: 2,
      state_dir: "/var/lib/sparekey",
      actuator: ["/usr/local/bin/relay", "--pin", "4"],
      keepalive_s: 5,
    },
    ids: [["tid"]],
  },
  {
    name: "TerminalProfile",
    schema: TerminalProfile,
    valid: {
      v: 1,
      term: "phone-1",
      user: "alice",
      password: "correct horse",
      broker_url: "mqtts://keys.example:8883",
      prefix: "acme/sparekey/v1",
    },
    ids: [["term"], ["user"]],
  },
  {
    name: "FobFile",
    schema: FobFile,
    valid: {
      v: 1,
      term: "fob-7",
      secret: SECRET,
      seed: KEY,
      credential: TOKEN,
      broker_url: "ws://127.0.0.1:8080",
      prefix: "sparekey/v1",
    },
    ids: [["term"]],
  },
  {
    name: "TargetStateFile",
    schema: TargetStateFile,
    valid: {
      v: 1,
      tid: "lock-1",
      registry_version: 3,
      registry: [{ slot: "front-door", min_gen: 2, status: "active" }],
      revocations_version: 0,
      revoked: [{ slot: "old-fob" }],
      floors: { "front-door": 2 },
      seqs: { "phone-1": 41 },
      uses: { "front-door:2": 3 },
      time_floor_ms: MILLIS,
    },
    ids: [["tid"], ["registry", 0, "slot"], ["revoked", 0, "slot"]],
  },
];

const BAD_IDS = ["a+b", "+", "#", "a/b", "", "x".repeat(65), "a b", "é"];

function withValue(doc: Record<string, unknown>, path: Path, value: unknown): Record<string, unknown> {
  const copy = structuredClone(doc);
  let node: unknown = copy;
  for (const step of path.slice(0, -1)) node = (node as Record<string | number, unknown>)[step];
  const last = path.at(-1);
  if (last === undefined) throw new Error("empty path");
  if (value === undefined) delete (node as Record<string | number, unknown>)[last];
  else (node as Record<string | number, unknown>)[last] = value;
  return copy;
}

/** A value of another JSON type than `value`. */
function otherType(value: unknown): unknown {
  return typeof value === "string" ? 42 : "42";
}

function requiredOf(schema: TSchema): string[] {
  const required: unknown = (schema as { required?: unknown }).required;
  return Array.isArray(required) ? required.filter((r): r is string => typeof r === "string") : [];
}

describe.each(fixtures.map((f) => [f.name, f] as const))("schema %s", (_name, f) => {
  const v = validator(f.schema);

  it("accepts the valid fixture", () => {
    expect(v.is(f.valid)).toBe(true);
    expect(v.lastIssues()).toEqual([]);
    expect(v.parse(f.valid)).toBe(f.valid);
  });

  it("refuses an extra member, at the top and in nested objects", () => {
    expect(v.is({ ...f.valid, extra: 1 })).toBe(false);
    expect(v.lastIssues()).toEqual(["/ must NOT have additional properties 'extra'"]);
    for (const [key, value] of Object.entries(f.valid)) {
      if (Array.isArray(value) && typeof value[0] === "object" && value[0] !== null) {
        expect(v.is(withValue(f.valid, [key, 0, "extra"], 1))).toBe(false);
      }
    }
  });

  it("refuses every member given a value of another JSON type", () => {
    for (const [key, value] of Object.entries(f.valid)) {
      if (f.anyType?.includes(key)) continue;
      expect(v.is({ ...f.valid, [key]: otherType(value) }), key).toBe(false);
      expect(v.is({ ...f.valid, [key]: null }), key).toBe(false);
    }
  });

  it("refuses the document without each required member", () => {
    const required = requiredOf(f.schema);
    expect(required.length).toBeGreaterThan(0);
    for (const key of required) expect(v.is(withValue(f.valid, [key], undefined)), key).toBe(false);
  });

  it("refuses a non-object document", () => {
    for (const doc of [null, [], "x", 1, true]) expect(v.is(doc)).toBe(false);
  });

  if (f.ids.length > 0) {
    it("refuses ids with +, #, /, empty or of 65 characters, and accepts 64", () => {
      for (const path of f.ids) {
        for (const bad of BAD_IDS)
          expect(v.is(withValue(f.valid, path, bad)), `${path.join("/")}=${bad}`).toBe(false);
        expect(v.is(withValue(f.valid, path, "A-z_0".padEnd(64, "9"))), path.join("/")).toBe(true);
      }
    });
  }
});

describe("schema details", () => {
  it("refuses v other than 1", () => {
    expect(validator(Challenge).is({ ...fixtures[0]?.valid, v: 2 })).toBe(false);
  });

  it("refuses a nonce that is not 16 bytes of base64url", () => {
    const challenge = { v: 1, tid: "lock-1", nonce: NONCE, period_ms: 1000, ts: MILLIS };
    for (const nonce of ["", `${NONCE}A`, NONCE.slice(1), `${NONCE.slice(1)}=`, `${NONCE.slice(1)}+`]) {
      expect(validator(Challenge).is({ ...challenge, nonce }), nonce).toBe(false);
    }
  });

  it("refuses a token payload time in milliseconds (times there are seconds) past year 9999", () => {
    const valid = fixtures.find((f) => f.name === "RelayPayload")?.valid ?? {};
    expect(validator(RelayPayload).is({ ...valid, iat: 253_402_300_799 })).toBe(true);
    expect(validator(RelayPayload).is({ ...valid, iat: 253_402_300_800 })).toBe(false);
    expect(validator(RelayPayload).is({ ...valid, iat: 1.5 })).toBe(false);
    expect(validator(RelayPayload).is({ ...valid, seq: -1 })).toBe(false);
    const { epoch: _epoch, ...withoutEpoch } = valid;
    expect(validator(RelayPayload).is(withoutEpoch)).toBe(false);
  });

  it("accepts every refusal and state reason in an event and no other", () => {
    const event = { v: 1, tid: "lock-1", ts: MILLIS, type: "auth_refused" };
    for (const reason of [...REFUSAL_REASONS, ...STATE_REASONS]) {
      expect(validator(TargetEvent).is({ ...event, reason }), reason).toBe(true);
    }
    expect(validator(TargetEvent).is({ ...event, reason: "because" })).toBe(false);
  });

  it("accepts a coalesced refusal's count and a lockout's end, and no count below one", () => {
    const event = { v: 1, tid: "lock-1", ts: MILLIS, type: "auth_refused", reason: "malformed", term: "t-1" };
    const lockout = { ...event, type: "lockout", reason: "locked_out", count: 10, until: MILLIS + 300_000 };
    expect({
      counted: validator(TargetEvent).is({ ...event, count: 499 }),
      lockout: validator(TargetEvent).is(lockout),
      zero: validator(TargetEvent).is({ ...event, count: 0 }),
      fraction: validator(TargetEvent).is({ ...event, count: 1.5 }),
    }).toEqual({ counted: true, lockout: true, zero: false, fraction: false });
  });

  it("accepts the will reason in a state and no refusal reason", () => {
    const state = { v: 1, tid: "lock-1", state: "offline", since: MILLIS };
    expect(validator(TargetState).is({ ...state, reason: "will" })).toBe(true);
    expect(validator(TargetState).is({ ...state, reason: "stale_nonce" })).toBe(false);
  });

  it("refuses a credential with duplicate or no target ids", () => {
    const valid = fixtures.find((f) => f.name === "CredentialPayload")?.valid ?? {};
    expect(validator(CredentialPayload).is({ ...valid, tids: ["lock-1", "lock-1"] })).toBe(false);
    expect(validator(CredentialPayload).is({ ...valid, tids: [] })).toBe(false);
  });

  it("refuses state file record keys that are not ids", () => {
    const valid = fixtures.find((f) => f.name === "TargetStateFile")?.valid ?? {};
    expect(validator(TargetStateFile).is({ ...valid, floors: { "a/b": 2 } })).toBe(false);
    expect(validator(TargetStateFile).is({ ...valid, seqs: { "+": 1 } })).toBe(false);
    expect(validator(TargetStateFile).is({ ...valid, uses: { "front-door": 1 } })).toBe(false);
  });

  it("refuses an RPC error code that is not snake_case", () => {
    const reply = { v: 1, id: "r", ok: false };
    expect(validator(RpcReply).is({ ...reply, error: { code: "NoGrant", message: "" } })).toBe(false);
  });
});

describe("validator().parse", () => {
  it("throws a SchemaError whose message carries the name, the path and the reason", () => {
    const schema = Type.Object({ a: Type.Object({ b: Type.Integer() }) }, { additionalProperties: false });
    const v = validator(schema, "thing");
    let caught: unknown;
    try {
      v.parse({ a: { b: "x" } });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchemaError);
    expect(caught).toMatchObject({
      code: "schema_violation",
      message: "thing: /a/b must be integer",
      issues: ["/a/b must be integer"],
    });
  });

  it("names the extra member it refuses", () => {
    expect(() => validator(Challenge).parse({ ...fixtures[0]?.valid, admin: true })).toThrow(
      /: \/ must NOT have additional properties 'admin'$/,
    );
  });

  it("for config files reports every problem at once", () => {
    const valid = fixtures.find((f) => f.name === "TerminalProfile")?.valid ?? {};
    const v = configValidator(TerminalProfile, "profile.json");
    expect(() => v.parse({ ...valid, term: "a/b", user: 7 })).toThrow(
      'profile.json: /term must match pattern "^[A-Za-z0-9_-]{1,64}$"; /user must be string',
    );
  });
});
