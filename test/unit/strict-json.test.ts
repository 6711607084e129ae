import { describe, expect, it } from "vitest";
import { hasRepeatedMember } from "../../schemas/strict-json.js";
import { parseJson } from "../../schemas/validate.js";

describe("strict JSON: a repeated member is refused", () => {
  it.each([
    ['{"alg":"none","typ":"t","alg":"EdDSA"}', "a header with alg twice, last one EdDSA"],
    ['{"a":1,"b":{"c":1,"c":2}}', "a nested object repeating a member"],
    ['[{"x":1},{"y":[{"z":1,"z":1}]}]', "an object inside arrays repeating a member"],
    ['{"kid":"a","\\u006bid":"b"}', "a repeat spelled with a unicode escape"],
    ['{"a" : 1 , "a"\n:\t2}', "a repeat with whitespace around the colons"],
    ['{"__proto__":1,"__proto__":2}', "__proto__ twice"],
  ])("parseJson refuses %s (%s)", (text) => {
    expect(JSON.parse(text)).toBeTypeOf("object");
    expect(parseJson(text)).toBeUndefined();
  });

  it.each([
    ['{"a":"\\":","b":1}', "a value holding an escaped quote and a colon"],
    ['{"a":{"a":{"a":1}}}', "the same name at different depths"],
    ['[{"a":1},{"a":2}]', "the same name in sibling objects"],
    ['{"a":"x","b":["a","a"]}', "strings equal to a member name in an array"],
    ['{"__proto__":{"polluted":true}}', "a lone __proto__ member"],
    ['"just a string: \\"a\\":1"', "a string document"],
    ["[]", "an empty array"],
  ])("parseJson accepts %s (%s)", (text) => {
    expect(parseJson(text)).toEqual(JSON.parse(text));
  });

  it("a lone __proto__ stays an own member and pollutes nothing", () => {
    const value = parseJson('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("walks deeply nested input without overflowing the stack", () => {
    const depth = 5000;
    const text = `${"[".repeat(depth)}{"a":1,"a":2}${"]".repeat(depth)}`;
    expect(hasRepeatedMember(text, JSON.parse(text))).toBe(true);
  });
});
