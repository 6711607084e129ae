import { describe, expect, it } from "vitest";
import {
  hashPassword,
  hashSecret,
  parsePasswordHash,
  randomSecret,
  verifyPassword,
  verifySecret,
} from "../../keyserver/passwords.js";

const FAST = { N: 2 ** 10, r: 8, p: 1 };

describe("passwords", () => {
  it("verifies the password it hashed and refuses a wrong one", async () => {
    const encoded = await hashPassword("correct horse", FAST);
    expect(await verifyPassword("correct horse", encoded)).toBe(true);
    expect(await verifyPassword("correct hors", encoded)).toBe(false);
    expect(await verifyPassword("", encoded)).toBe(false);
  });

  it("encodes the default parameters, a 16-byte salt and a 32-byte hash", async () => {
    const encoded = await hashPassword("pw-default");
    expect(encoded).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    const parsed = parsePasswordHash(encoded);
    expect(parsed?.params).toEqual({ N: 32768, r: 8, p: 1 });
    expect(parsed?.salt.length).toBe(16);
    expect(parsed?.hash.length).toBe(32);
  });

  it("salts every hash, so equal passwords give different encodings", async () => {
    expect(await hashPassword("same", FAST)).not.toBe(await hashPassword("same", FAST));
  });

  it("refuses malformed or too costly stored hashes instead of throwing", async () => {
    const good = await hashPassword("pw", FAST);
    expect(await verifyPassword("pw", "plain")).toBe(false);
    expect(await verifyPassword("pw", good.replace("$1024$", "$1000$"))).toBe(false);
    expect(await verifyPassword("pw", good.replace("$1024$", `$${2 ** 24}$`))).toBe(false);
  });

  it("checks high-entropy secrets against their SHA-256", () => {
    const secret = randomSecret();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = hashSecret(secret);
    expect(stored.startsWith("sha256$")).toBe(true);
    expect(stored).not.toContain(secret);
    expect(verifySecret(secret, stored)).toBe(true);
    expect(verifySecret(randomSecret(), stored)).toBe(false);
    expect(verifySecret(secret, "scrypt$whatever")).toBe(false);
  });
});
