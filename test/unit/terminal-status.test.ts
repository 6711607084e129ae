import { describe, expect, it } from "vitest";
import { runTerminal } from "../../cli/terminal.js";
import { ensureTerminalDir, loadOrCreateKey, updateWallet, writeProfile } from "../../terminal/files.js";
import { makeHolder, makeIssuer, mintCredential } from "../helpers/issuer.js";
import { tempDir } from "../helpers/wait.js";

const NBF = Date.parse("2030-03-18T07:00:00Z") / 1000;
const EXP = Date.parse("2030-07-18T16:00:00Z") / 1000;
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i + 16).toString(16).toUpperCase()).join(":");
const CA_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

function sink(): { write(t: string): void; text(): string } {
  const parts: string[] = [];
  return { write: (t: string) => parts.push(t), text: () => parts.join("") };
}

/** A logged-in terminal dir with a scheduled, count-limited key and a key a target said is revoked. */
function terminalDir(): { dir: string; kid: string } {
  const dir = tempDir("sparekey-status-");
  ensureTerminalDir(dir);
  writeProfile(dir, {
    v: 1,
    term: "phone-1",
    user: "alice",
    password: "secret-password-1",
    broker_url: "mqtts://gateway.example:18883",
    prefix: "sparekey",
    tls: { ca_pem: CA_PEM, ca_sha256: FINGERPRINT, trust: "first_use" },
  });
  const { key } = loadOrCreateKey(dir, "phone-1");
  const issuer = makeIssuer();
  const holder = makeHolder();
  const guard = mintCredential(issuer, {
    slot: "guard",
    gen: 3,
    tids: ["lock-1", "lock-2"],
    holder: holder.publicKeyB64,
    term: "phone-1",
    user: "alice",
    nbf: NBF,
    exp: EXP,
    max_uses: 5,
    schedule: [{ days: [1, 2, 3, 4, 5], start: "08:00", end: "18:00" }],
  });
  const old = mintCredential(issuer, {
    slot: "old",
    gen: 1,
    tids: ["lock-9"],
    holder: holder.publicKeyB64,
    term: "phone-1",
    nbf: NBF,
    exp: undefined,
  });
  updateWallet(dir, "phone-1", (w) => {
    w.credentials.guard = { token: guard, tids: ["lock-1", "lock-2"], gen: 3 };
    w.credentials.old = { token: old, tids: ["lock-9"], gen: 1, revoked: "slot_revoked" };
    w.last_seq = 42;
  });
  return { dir, kid: key.kid };
}

describe("sparekey terminal status", () => {
  it("shows the profile, the pinned CA and each key's limits in this machine's zone, named", async () => {
    const { dir, kid } = terminalDir();
    const out = sink();
    const io = { stdout: out, stderr: sink(), env: {}, timeZone: "Europe/Berlin" };
    expect(await runTerminal(["status", "--dir", dir], io)).toBe(0);
    const text = out.text();
    expect(text.split("\n").slice(0, 9)).toEqual([
      `dir       ${dir}`,
      "terminal  phone-1",
      "user      alice",
      "broker    mqtts://gateway.example:18883",
      "prefix    sparekey",
      `CA        SHA-256 ${FINGERPRINT} (pinned at first login)`,
      expect.stringMatching(new RegExp(`^key       ${kid} \\(public [A-Za-z0-9_-]{43}\\)$`)),
      "last seq  42",
      "wallet    2 credential(s)",
    ]);
    expect(text).toContain(
      [
        "  slot guard gen 3 targets lock-1, lock-2 (stored key)",
        "    valid from  2030-03-18 08:00:00 UTC+01:00",
        "    expires     2030-07-18 18:00:00 UTC+02:00",
        "    uses        at most 5",
        "    schedule    Mon-Fri 08:00-18:00 (target's local time)",
        "    times in    Europe/Berlin",
      ].join("\n"),
    );
    expect(text).toContain("  slot old gen 1 targets lock-9 (stored key) REVOKED (slot revoked)\n");
    expect(text).not.toMatch(/secret-password-1|eyJ|BEGIN CERTIFICATE/);
    expect(text).not.toContain(String(NBF));
  });

  it("gives machines the stored values with --json: Unix seconds and schedules as data", async () => {
    const { dir, kid } = terminalDir();
    const out = sink();
    expect(
      await runTerminal(["status", "--dir", dir, "--json"], { stdout: out, stderr: sink(), env: {} }),
    ).toBe(0);
    const status = JSON.parse(out.text());
    expect(status).toEqual({
      dir,
      term: "phone-1",
      user: "alice",
      broker_url: "mqtts://gateway.example:18883",
      prefix: "sparekey",
      tls: { ca_sha256: FINGERPRINT, trust: "first_use" },
      key: { kid, public_key: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
      last_seq: 42,
      keys: [
        {
          slot: "guard",
          tids: ["lock-1", "lock-2"],
          gen: 3,
          credential: {
            mode: "stored",
            term: "phone-1",
            user: "alice",
            nbf: NBF,
            exp: EXP,
            max_uses: 5,
            schedule: [{ days: [1, 2, 3, 4, 5], start: "08:00", end: "18:00" }],
            iat: expect.any(Number),
          },
        },
        {
          slot: "old",
          tids: ["lock-9"],
          gen: 1,
          revoked: "slot_revoked",
          credential: { mode: "stored", term: "phone-1", nbf: NBF, iat: expect.any(Number) },
        },
      ],
    });
    expect(out.text()).not.toMatch(/secret-password-1|eyJ/);
  });
});
