import { spawn } from "node:child_process";
import { describe, expect, it, onTestFinished } from "vitest";
import { auditVerify } from "../../keyserver/admin/audit.js";
import { hashSecret } from "../../keyserver/passwords.js";
import { openKeyServerState } from "../../keyserver/state.js";
import { tempDataDir } from "../helpers/keyserver.js";
import { waitFor } from "../helpers/wait.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const ROUNDS = 4;
/** A round is killed after 1 to this many acknowledged ops (about two per loop turn). */
const MOST_ACKS = 40;

/** One run of the child until it printed `acks` complete lines, then SIGKILL; its complete lines. */
async function runAndKill(dataDir: string, round: number, acks: number): Promise<string[]> {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "test/helpers/keyserver-crash-child.ts", dataDir, `${round}`],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  proc.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    proc.once("exit", (_code, signal) => resolve(signal)),
  );
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  });
  const complete = () => out.split("\n").slice(0, -1);
  await waitFor(
    () => complete().length >= acks || proc.exitCode !== null,
    `${acks} acknowledged ops from round ${round}`,
    30_000,
  );
  expect(proc.exitCode, err).toBeNull();
  proc.kill("SIGKILL");
  expect(await exited).toBe("SIGKILL");
  // Only lines the child finished writing count as acknowledged.
  return complete();
}

describe("a key server store killed with SIGKILL while issuing and revoking", () => {
  it("keeps every acknowledged revocation, never repeats a generation and keeps its audit chain", {
    timeout: 120_000,
  }, async () => {
    const dataDir = await tempDataDir("sparekey-ks-crash-");
    const seeded = openKeyServerState(dataDir);
    await seeded.store.addUser({ id: "alice", passwordHash: "scrypt$not-checked" }, "admin");
    await seeded.store.addTerminal({ serial: "p1", user: "alice" }, "admin");
    // Two phones take turns, so every download raises the generation (one phone alone would renew).
    await seeded.store.addTerminal({ serial: "p2", user: "alice" }, "admin");
    await seeded.store.addTarget({ tid: "door-1", secretHash: hashSecret("t".repeat(43)) }, "admin");
    await seeded.store.createSlot({ slot: "main", tids: ["door-1"] }, "admin");
    await seeded.store.addGrant({ user: "alice", slot: "main", mode: "stored" }, "admin");
    await seeded.close();

    const gens: number[] = [];
    const revoked = new Map<string, number>();
    const killedAfter: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const acks = 1 + Math.floor(Math.random() * MOST_ACKS);
      killedAfter.push(acks);
      for (const line of await runAndKill(dataDir, round, acks)) {
        const [kind, a, b] = line.split(" ");
        if (kind === "gen") gens.push(Number(a));
        else if (kind === "revoked" && a) revoked.set(a, Number(b));
        else throw new Error(`unexpected line ${line}`);
      }

      const { store, close } = openKeyServerState(dataDir);
      try {
        const where = `killed after ${killedAfter.join(", ")} acknowledged ops`;
        // Generations only rise, across rounds too: none acknowledged was lost and handed out again.
        expect(gens, where).toEqual([...gens].sort((x, y) => x - y));
        expect(new Set(gens).size, where).toBe(gens.length);
        expect((await store.getSlot("main"))?.gen, where).toBeGreaterThanOrEqual(Math.max(0, ...gens));
        const list = await store.currentRevocations();
        const listed = new Set(list?.revoked.map((e) => e.slot));
        for (const [slot, version] of revoked) {
          expect(
            { slot, listed: listed.has(slot), status: (await store.getSlot(slot))?.status },
            where,
          ).toEqual({
            slot,
            listed: true,
            status: "revoked",
          });
          expect(list?.version ?? 0, where).toBeGreaterThanOrEqual(version);
        }
        expect(await auditVerify({ store }), where).toMatchObject({ ok: true });
      } finally {
        await close();
      }
    }
    expect(gens.length).toBeGreaterThanOrEqual(ROUNDS);
  });
});
