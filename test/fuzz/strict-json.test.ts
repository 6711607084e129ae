import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseJson } from "../../schemas/validate.js";
import { EDGE_NUMBERS, editJson, FC_PARAMS, FUZZ_TIMEOUT_MS, jsonEdit } from "./mutate.js";

/** JSON.parse, or undefined where it throws. */
function plainParse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Equal as JSON values, by own members, walked without recursion (a fuzzed document nests thousands
 * deep). Not vitest's equality: it reads a member named `constructor` as the object's class.
 */
function sameJson(a: unknown, b: unknown): boolean {
  const pending: [unknown, unknown][] = [[a, b]];
  while (pending.length > 0) {
    const [x, y] = pending.pop() ?? [];
    if (typeof x !== "object" || x === null || typeof y !== "object" || y === null) {
      if (!Object.is(x, y)) return false;
      continue;
    }
    if (Array.isArray(x) !== Array.isArray(y)) return false;
    const xk = Object.keys(x);
    const yk = Object.keys(y);
    if (xk.length !== yk.length) return false;
    for (const k of xk) {
      if (!Object.hasOwn(y, k)) return false;
      pending.push([(x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]]);
    }
  }
  return true;
}

/** A JSON text written member by member, so a test knows whether it repeats a name. */
type Doc = { readonly text: string; readonly repeats: boolean };

const NAMES = ["a", "b", "alg", "__proto__", "constructor", "k\u00e9", "\u{1F511}", "a\\u0062", ""];

/** Objects and arrays written as text, some repeating a member name in one object. */
const doc: fc.Arbitrary<Doc> = fc.letrec<{ doc: Doc; leaf: Doc }>((tie) => ({
  leaf: fc
    .oneof(
      fc.constantFrom(...EDGE_NUMBERS, "true", "false", "null", '"x"', '"\\":"', '"\\u0000"', '"\\uD800"'),
      fc.string({ unit: "binary", maxLength: 12 }).map((s) => JSON.stringify(s)),
    )
    .map((text) => ({ text, repeats: false })),
  doc: fc.oneof(
    { depthSize: "small" },
    tie("leaf"),
    fc.array(tie("doc"), { maxLength: 4 }).map((items) => ({
      text: `[${items.map((i) => i.text).join(",")}]`,
      repeats: items.some((i) => i.repeats),
    })),
    fc
      .array(fc.tuple(fc.constantFrom(...NAMES), tie("doc"), fc.constantFrom("", " ", "\n\t")), {
        maxLength: 5,
      })
      .map((members) => {
        // `a\u0062` is written escaped, so as a member it is "ab": compare the names JSON.parse sees.
        const seen = members.map(([name]) => JSON.parse(`"${name}"`) as string);
        return {
          text: `{${members.map(([name, value, ws]) => `${ws}"${name}"${ws}:${ws}${value.text}`).join(",")}}`,
          repeats: new Set(seen).size !== seen.length || members.some(([, value]) => value.repeats),
        };
      }),
  ),
})).doc;

describe("fuzz: strict JSON", () => {
  it("agrees with JSON.parse on every document without a repeated member, and refuses every one with", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    fc.assert(
      fc.property(doc, ({ text, repeats }) => {
        expect(sameJson(parseJson(text), repeats ? undefined : JSON.parse(text))).toBe(true);
      }),
      FC_PARAMS,
    );
  });

  it("agrees with JSON.parse on any generated JSON value", { timeout: FUZZ_TIMEOUT_MS }, () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 1, "\t"), (value, indent) => {
        const text = JSON.stringify(value, null, indent);
        expect(sameJson(parseJson(text), JSON.parse(text))).toBe(true);
      }),
      FC_PARAMS,
    );
  });

  it("never throws on any text, and returns either undefined or what JSON.parse returns", {
    timeout: FUZZ_TIMEOUT_MS,
  }, () => {
    const text = fc.oneof(
      fc.string({ unit: "binary", maxLength: 200 }),
      fc
        .json()
        .chain((j) =>
          fc
            .tuple(fc.nat({ max: j.length }), fc.string({ unit: "binary", maxLength: 4 }))
            .map(([at, insert]) => j.slice(0, at) + insert + j.slice(at)),
        ),
      fc.tuple(fc.json(), jsonEdit(["kid"])).map(([j, edit]) => editJson(j, edit)),
    );
    fc.assert(
      fc.property(text, (t) => {
        const strict = parseJson(t);
        if (strict !== undefined) expect(sameJson(strict, plainParse(t))).toBe(true);
        if (plainParse(t) === undefined) expect(strict).toBeUndefined();
      }),
      FC_PARAMS,
    );
  });
});
