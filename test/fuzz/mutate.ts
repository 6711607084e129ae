import fc from "fast-check";
import { TokenType } from "../../schemas/tokens.js";

/**
 * Shared pieces of the fuzz suite: how many runs and which seed (CI: few runs, a fixed seed; `npm run
 * fuzz`: FUZZ_RUNS deep, a fresh seed unless FUZZ_SEED replays one), and mutations of valid tokens.
 */

const deepRuns = Number(process.env.FUZZ_RUNS);
const seedEnv = Number(process.env.FUZZ_SEED);
/** Runs per property: bounded in CI so the suite stays a few seconds. */
export const RUNS = Number.isInteger(deepRuns) && deepRuns > 0 ? deepRuns : 300;
/** fast-check prints the seed of a failure; `FUZZ_SEED=<seed> npm run fuzz` replays it. */
export const SEED = Number.isInteger(seedEnv)
  ? seedEnv
  : Number.isInteger(deepRuns)
    ? Date.now() % 2_147_483_647
    : 20_261_126;
export const FC_PARAMS = { seed: SEED, numRuns: RUNS } as const;
/** A vitest timeout that grows with the runs (signatures dominate: about a millisecond a run at most). */
export const FUZZ_TIMEOUT_MS = 20_000 + RUNS * 5;

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** Characters a mutation writes: the base64url alphabet and what must never pass for it. */
const ODD_CHARS = [".", "=", "+", "/", " ", "\n", "\u0000", "é", "\uD800", "\u{1F511}", "%", "\\"];

/** Numbers at the edges of what JSON, JavaScript and the schemas hold. */
export const EDGE_NUMBERS = [
  "0",
  "-0",
  "-1",
  "1",
  "1.5",
  "1e-7",
  "2147483647",
  "2147483648",
  "4294967296",
  "9007199254740991",
  "9007199254740992",
  "-9007199254740993",
  "1e308",
  "1e999",
  "-1e999",
  "0.1e1",
  "1E2",
  "100000000000000000000000000000",
];

const ALGS = ["none", "None", "HS256", "ES256", "RS256", "eddsa", "EdDSA ", "", "Ed25519"];
const TYPS = [...Object.values(TokenType), "JWT", "sparekey-frame", "SPAREKEY-FRAME+JWS", ""];

/** A mutation of a JSON object's text (a token's header or payload), applied after decoding it. */
export type JsonEdit =
  | { readonly k: "dup"; readonly member: number; readonly same: boolean }
  | { readonly k: "proto"; readonly name: "__proto__" | "constructor" | "prototype" }
  | { readonly k: "number"; readonly member: number; readonly text: string }
  | { readonly k: "string"; readonly member: number; readonly text: string }
  | { readonly k: "drop"; readonly member: number }
  | { readonly k: "extra"; readonly name: string }
  | { readonly k: "nest"; readonly member: number; readonly depth: number }
  | { readonly k: "alg"; readonly value: string }
  | { readonly k: "typ"; readonly value: string }
  | { readonly k: "kid"; readonly value: string };

/** One mutation of a compact token. */
export type Mutation =
  | { readonly k: "flip"; readonly at: number; readonly ch: string }
  | { readonly k: "swap"; readonly i: number; readonly j: number }
  | { readonly k: "truncate"; readonly at: number }
  | { readonly k: "insert"; readonly at: number; readonly text: string }
  | { readonly k: "delete"; readonly at: number; readonly n: number }
  | { readonly k: "oversize"; readonly n: number }
  | { readonly k: "splice"; readonly segment: 0 | 1 | 2; readonly donor: number }
  | { readonly k: "padding" }
  | { readonly k: "json"; readonly segment: 0 | 1; readonly edit: JsonEdit };

const member = fc.nat({ max: 31 });

export function jsonEdit(kids: readonly string[]): fc.Arbitrary<JsonEdit> {
  return fc.oneof(
    fc.record({ k: fc.constant("dup" as const), member, same: fc.boolean() }),
    fc.record({
      k: fc.constant("proto" as const),
      name: fc.constantFrom("__proto__", "constructor", "prototype"),
    }),
    fc.record({ k: fc.constant("number" as const), member, text: fc.constantFrom(...EDGE_NUMBERS) }),
    fc.record({
      k: fc.constant("string" as const),
      member,
      text: fc.oneof(
        fc.string({ unit: "binary", maxLength: 24 }),
        fc.constantFrom("\uD800", "é", "e\u0301", "\u202E", "\u0000", "a".repeat(65), "+", "#", "a/b"),
      ),
    }),
    fc.record({ k: fc.constant("drop" as const), member }),
    fc.record({
      k: fc.constant("extra" as const),
      name: fc.constantFrom("x", "v2", "alg", "crit", "jku", "b64"),
    }),
    fc.record({ k: fc.constant("nest" as const), member, depth: fc.integer({ min: 1, max: 3000 }) }),
    fc.record({ k: fc.constant("alg" as const), value: fc.constantFrom(...ALGS) }),
    fc.record({ k: fc.constant("typ" as const), value: fc.constantFrom(...TYPS) }),
    fc.record({
      k: fc.constant("kid" as const),
      value: fc.oneof(fc.constantFrom(...kids, "", "a".repeat(200)), fc.string({ maxLength: 43 })),
    }),
  );
}

/** Mutations of a token, with `donors` other valid tokens to splice segments from. */
export function mutation(kids: readonly string[], donors: number): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: 10_000 });
  return fc.oneof(
    fc.record({
      k: fc.constant("flip" as const),
      at,
      ch: fc.oneof(fc.constantFrom(...B64URL), fc.constantFrom(...ODD_CHARS)),
    }),
    fc.record({ k: fc.constant("swap" as const), i: at, j: at }),
    fc.record({ k: fc.constant("truncate" as const), at }),
    fc.record({
      k: fc.constant("insert" as const),
      at,
      text: fc.string({ unit: "binary", minLength: 1, maxLength: 8 }),
    }),
    fc.record({ k: fc.constant("delete" as const), at, n: fc.integer({ min: 1, max: 8 }) }),
    fc.record({ k: fc.constant("oversize" as const), n: fc.integer({ min: 1, max: 9000 }) }),
    fc.record({
      k: fc.constant("splice" as const),
      segment: fc.constantFrom(0 as const, 1 as const, 2 as const),
      donor: fc.nat({ max: Math.max(0, donors - 1) }),
    }),
    fc.constant({ k: "padding" as const }),
    fc.record({
      k: fc.constant("json" as const),
      segment: fc.constantFrom(0 as const, 1 as const),
      edit: jsonEdit(kids),
    }),
  );
}

/** One to three mutations in a row. */
export function mutations(kids: readonly string[], donors: number): fc.Arbitrary<Mutation[]> {
  return fc.array(mutation(kids, donors), { minLength: 1, maxLength: 3 });
}

function memberText(name: string, valueText: string): string {
  return `${JSON.stringify(name)}:${valueText}`;
}

/** Apply `edit` to the text of a JSON object; a text that is not an object is returned changed anyway. */
export function editJson(text: string, edit: JsonEdit): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return `${text}}`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return `{"x":${text}}`;
  const entries = Object.entries(value as Record<string, unknown>).map(
    ([k, v]) => [k, JSON.stringify(v)] as [string, string],
  );
  const pick = (i: number): number => (entries.length === 0 ? -1 : i % entries.length);
  const set = (name: string, valueText: string): void => {
    const found = entries.findIndex(([k]) => k === name);
    if (found >= 0) entries[found] = [name, valueText];
    else entries.push([name, valueText]);
  };
  switch (edit.k) {
    case "dup": {
      const i = pick(edit.member);
      const entry = i >= 0 ? entries[i] : undefined;
      if (!entry) return '{"a":1,"a":1}';
      entries.push([entry[0], edit.same ? entry[1] : '"EdDSA"']);
      break;
    }
    case "proto":
      entries.push([edit.name, '{"polluted":true,"alg":"none"}']);
      break;
    case "number":
    case "string":
    case "nest": {
      const i = pick(edit.member);
      const entry = i >= 0 ? entries[i] : undefined;
      const valueText =
        edit.k === "number"
          ? edit.text
          : edit.k === "string"
            ? JSON.stringify(edit.text)
            : `${"[".repeat(edit.depth)}${"]".repeat(edit.depth)}`;
      if (entry) entries[i] = [entry[0], valueText];
      else entries.push(["x", valueText]);
      break;
    }
    case "drop": {
      const i = pick(edit.member);
      if (i >= 0) entries.splice(i, 1);
      break;
    }
    case "extra":
      entries.push([edit.name, "true"]);
      break;
    case "alg":
    case "typ":
    case "kid":
      set(edit.k, JSON.stringify(edit.value));
      break;
  }
  return `{${entries.map(([k, v]) => memberText(k, v)).join(",")}}`;
}

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}

function unb64(segment: string): string {
  return Buffer.from(segment, "base64url").toString("utf8");
}

/** Apply one mutation to a token; `donors` are other valid tokens. */
export function mutate(token: string, m: Mutation, donors: readonly string[]): string {
  const n = token.length;
  switch (m.k) {
    case "flip": {
      if (n === 0) return m.ch;
      const i = m.at % n;
      return token.slice(0, i) + m.ch + token.slice(i + 1);
    }
    case "swap": {
      if (n === 0) return token;
      const [i, j] = [m.i % n, m.j % n].sort((a, b) => a - b) as [number, number];
      if (i === j) return token;
      return token.slice(0, i) + token[j] + token.slice(i + 1, j) + token[i] + token.slice(j + 1);
    }
    case "truncate":
      return token.slice(0, m.at % (n + 1));
    case "insert": {
      const i = m.at % (n + 1);
      return token.slice(0, i) + m.text + token.slice(i);
    }
    case "delete": {
      const i = m.at % (n + 1);
      return token.slice(0, i) + token.slice(i + m.n);
    }
    case "oversize":
      return token + "A".repeat(m.n);
    case "splice": {
      const parts = token.split(".");
      const donor = donors[m.donor % Math.max(1, donors.length)]?.split(".");
      const piece = donor?.[m.segment];
      if (piece === undefined || parts.length <= m.segment) return token;
      parts[m.segment] = piece;
      return parts.join(".");
    }
    case "padding":
      return token.replace(/\./g, "=.").concat("==");
    case "json": {
      const parts = token.split(".");
      const segment = parts[m.segment];
      if (segment === undefined) return token;
      parts[m.segment] = b64(editJson(unb64(segment), m.edit));
      return parts.join(".");
    }
  }
}

/** Apply mutations in order. */
export function mutateAll(token: string, ms: readonly Mutation[], donors: readonly string[]): string {
  return ms.reduce((t, m) => mutate(t, m, donors), token);
}

/** `head.body` of a compact token: what its signature covers. */
export function signingInput(token: string): string {
  return token.slice(0, Math.max(0, token.lastIndexOf(".")));
}
