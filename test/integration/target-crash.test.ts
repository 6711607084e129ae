import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { readJsonFile } from "../../common/atomic-file.js";
import { decodeToken, signToken } from "../../common/jws.js";
import { signingKeyFromSeed } from "../../common/keys.js";
import { connectMqtt } from "../../common/mqtt.js";
import { writeFob } from "../../keyserver/admin/fob.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import { FobFile } from "../../schemas/config.js";
import type { TargetEvent } from "../../schemas/messages.js";
import { TargetStateFile } from "../../schemas/records.js";
import { TokenType } from "../../schemas/tokens.js";
import { usesKey } from "../../target/memory.js";
import { stateFilePath } from "../../target/store.js";
import { adminContext, observeTarget, runAdmin, startTestGateway } from "../helpers/gateway.js";
import { tempDir } from "../helpers/wait.js";

/**
 * A 1-use key raced by 50 frames at once while the target process is SIGKILLed at random points and
 * started again, several times: across every process the key opens the lock at most once, and the
 * persisted use count says exactly one use was spent.
 */

const TID = "crash-door";
const SLOT = "crash-key";
const FRAMES_PER_ROUND = 50;
const KILL_ROUNDS = 5;
const ROOT = new URL("../../", import.meta.url).pathname;

interface Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `sparekey target --config FILE` as its own process, killed when the test finishes. */
function spawnTarget(configFile: string): Child {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "cli/sparekey.ts", "target", "--config", configFile, "--log-level", "warn"],
    { cwd: ROOT, stdio: ["ignore", "ignore", "ignore"] },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  });
  return { proc, exited };
}

/** A small seeded generator, so a failing run's kill points can be replayed. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("a target process killed while a 1-use key is raced", () => {
  it("grants exactly one session across every kill and restart", { timeout: 120_000 }, async () => {
    const gateway = await startTestGateway();
    const root = tempDir("sparekey-crash-");
    const configFile = join(root, `${TID}.json`);
    const config = await runAdmin(gateway, pairTarget, {
      tid: TID,
      out: configFile,
      brokerUrl: gateway.url,
      stateDir: join(root, "state"),
      // Long enough that one round's frames all answer the nonce they were signed for.
      periodMs: 2000,
    });
    await runAdmin(gateway, createSlot, { slot: SLOT, tids: [TID] });
    const fobFile = join(root, "FOB.json");
    await writeFob(adminContext(gateway), { slot: SLOT, fob: "FOB-1", out: fobFile, brokerUrl: gateway.url });
    await gateway.keyserver.publishNow();
    const fob = readJsonFile(fobFile, FobFile, "fob");
    if (!fob) throw new Error("writeFob wrote no fob file");
    const holderKey = signingKeyFromSeed(Buffer.from(fob.seed, "base64url"));
    // The fob's own credential, issued again by the real issuer with one use.
    const issued = decodeToken(fob.credential, TokenType.credential).payload;
    const oneUse = signToken(
      TokenType.credential,
      { ...issued, max_uses: 1 },
      gateway.state.issuer.signingKey,
    );
    const frame = (nonce: string, seq: number) =>
      signToken(
        TokenType.frame,
        { v: 1, tid: TID, slot: SLOT, term: fob.term, nonce, seq, cred: oneUse },
        holderKey,
      );

    const watch = await observeTarget(gateway, TID);
    const random = seeded(Number(process.env.CRASH_SEED ?? 20_261_126));
    let seq = 0;
    const decisionsOf = (from: number): TargetEvent[] =>
      watch.events.slice(from).filter((e) => e.term === fob.term && e.type.startsWith("auth_"));

    /** Start a process, race 50 frames at it, and either SIGKILL it after a random delay or let it decide. */
    const round = async (kill: boolean): Promise<TargetEvent | undefined> => {
      const at = watch.mark();
      const child = spawnTarget(configFile);
      await watch.state(at, (s) => s.reason === "started", "the target process to start", 20_000);
      const { nonce } = await watch.challenge(at, "the new process's challenge", 10_000);
      // A fresh connection each round: a new terminal session racing the same credential.
      const sender = await connectMqtt({
        url: gateway.url,
        clientId: fob.term,
        username: fob.term,
        password: fob.secret,
        reconnectPeriod: 0,
      });
      const sends = Array.from({ length: FRAMES_PER_ROUND }, () => {
        seq += 1 + Math.floor(random() * 3);
        return sender.publishAsync(watch.topics.frames(TID, fob.term), frame(nonce, seq), { qos: 0 });
      });
      if (kill) {
        // Somewhere between before the first frame lands and after the last is decided.
        const delayMs = Math.floor(random() * 60);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        child.proc.kill("SIGKILL");
        expect((await child.exited).signal).toBe("SIGKILL");
      }
      const first = kill
        ? undefined
        : await watch.event(
            at,
            (e) => e.term === fob.term && e.type.startsWith("auth_"),
            "a decision",
            10_000,
          );
      await Promise.allSettled(sends);
      await sender.endAsync(true);
      if (!kill) {
        child.proc.kill("SIGKILL");
        await child.exited;
      }
      return first;
    };

    const from = watch.mark();
    for (let i = 0; i < KILL_ROUNDS; i++) await round(true);
    const lastRound = await round(false);

    const decisions = decisionsOf(from.events);
    const established = decisions.filter((e) => e.type === "auth_established");
    const opened = watch.states
      .slice(from.states)
      .filter((s) => s.state === "available" && s.term === fob.term);
    const saved = readJsonFile(stateFilePath(config.state_dir, TID), TargetStateFile, "target state");
    // The use is persisted before the lock opens: a kill between the two may leave no event behind, so
    // the file is the count of what was granted, and the events may only ever show that one.
    expect({
      uses: saved?.uses[usesKey(SLOT, issued.gen)],
      established: established.length <= 1,
      opened: opened.length <= 1,
      everyOpenUsedTheLastUse: established.every((e) => e.uses_left === 0),
    }).toEqual({ uses: 1, established: true, opened: true, everyOpenUsedTheLastUse: true });
    // The round that was not killed decided its first frame: the key's one opening, or refused as spent.
    const lastOutcome = lastRound?.type === "auth_refused" ? lastRound.reason : lastRound?.type;
    expect(["auth_established", "uses_exhausted"]).toContain(lastOutcome);
  });
});
