import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { readJsonFile } from "../../common/atomic-file.js";
import { signToken } from "../../common/jws.js";
import { signingKeyFromSeed } from "../../common/keys.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt } from "../../common/mqtt.js";
import { writeFob } from "../../keyserver/admin/fob.js";
import { createSlot, pairTarget } from "../../keyserver/admin/targets.js";
import type { FobFile } from "../../schemas/config.js";
import { TargetStateFile } from "../../schemas/records.js";
import { TokenType } from "../../schemas/tokens.js";
import { stateFilePath } from "../../target/store.js";
import { readFob, startFobUse } from "../../terminal/use.js";
import { adminContext, observeTarget, runAdmin, startTestGateway } from "../helpers/gateway.js";
import { tempDir } from "../helpers/wait.js";

const TID = "vault-door";
const SLOT = "vault-key";
const ROOT = new URL("../../", import.meta.url).pathname;

interface Child {
  readonly proc: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `sparekey target --config FILE` as its own process, killed when the test finishes. */
function spawnTarget(configFile: string): Child {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "cli/sparekey.ts", "target", "--config", configFile, "--log-level", "warn"],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  proc.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  });
  return { proc, output: () => output, exited };
}

function fobKey(fob: FobFile) {
  return signingKeyFromSeed(Buffer.from(fob.seed, "base64url"));
}

/** A frame the fob itself could send: its own key, its own credential, any nonce and seq. */
function fobFrame(fob: FobFile, nonce: string, seq: number): string {
  return signToken(
    TokenType.frame,
    { v: 1, tid: TID, slot: SLOT, term: fob.term, nonce, seq, cred: fob.credential },
    fobKey(fob),
  );
}

describe("a target process killed with SIGKILL", () => {
  // Two child processes each pay tsx's start-up: a generous deadline for a loaded machine.
  it("comes back with its generation floors, registry version and seq high-water marks", {
    timeout: 60_000,
  }, async () => {
    const gateway = await startTestGateway();
    const root = tempDir("sparekey-kill-");
    const configFile = join(root, `${TID}.json`);
    const config = await runAdmin(gateway, pairTarget, {
      tid: TID,
      out: configFile,
      brokerUrl: gateway.url,
      stateDir: join(root, "state"),
      periodMs: 150,
    });
    await runAdmin(gateway, createSlot, { slot: SLOT, tids: [TID] });
    const fob1File = join(root, "FOB-1.json");
    await writeFob(adminContext(gateway), {
      slot: SLOT,
      fob: "FOB-1",
      out: fob1File,
      brokerUrl: gateway.url,
    });
    await gateway.keyserver.publishNow();
    const publishedVersion = (await gateway.state.store.listTargets()).find(
      (t) => t.tid === TID,
    )?.registry_version;
    const watch = await observeTarget(gateway, TID);

    let at = watch.mark();
    const first = spawnTarget(configFile);
    await watch.state(at, (s) => s.reason === "started", "the first target process to start", 15_000);
    expect(await watch.event(at, (e) => e.type === "registry_applied", "the registry")).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "registry_applied",
      version: publishedVersion,
    });

    // From here on no registry is published: gen 2 reaches the lock only through a frame.
    await gateway.keyserver.stop();
    const fob2File = join(root, "FOB-2.json");
    const fob2Written = await writeFob(adminContext(gateway), {
      slot: SLOT,
      fob: "FOB-2",
      out: fob2File,
      brokerUrl: gateway.url,
    });
    expect(fob2Written.gen).toBe(2);

    at = watch.mark();
    const fob2Use = await startFobUse({ fobFile: fob2File, tid: TID, logger: silentLogger() });
    onTestFinished(() => fob2Use.close());
    await watch.state(at, (s) => s.state === "available" && s.term === "FOB-2", "gen 2 to open the lock");

    // Killed mid-session, without a chance to write anything more.
    first.proc.kill("SIGKILL");
    expect(await first.exited).toEqual({ code: null, signal: "SIGKILL" });
    await fob2Use.close();

    const saved = readJsonFile(stateFilePath(config.state_dir, TID), TargetStateFile, "target state");
    if (!saved) throw new Error("the target wrote no state file");
    const fob2Seq = saved.seqs["FOB-2"];
    if (fob2Seq === undefined) throw new Error("the state file holds no seq for FOB-2");
    // The floor is 2 while the registry the lock holds still says min_gen 1: it came from the frame.
    expect({
      registry_version: saved.registry_version,
      registry: saved.registry,
      floors: saved.floors,
      seqs: Object.keys(saved.seqs),
    }).toEqual({
      registry_version: publishedVersion,
      registry: [{ slot: SLOT, min_gen: 1, status: "active" }],
      floors: { [SLOT]: 2 },
      seqs: ["FOB-2"],
    });

    // Nor may the retained registry help the new process: clear it.
    await watch.client.publishAsync(watch.topics.registry(TID), "", { qos: 1, retain: true });

    at = watch.mark();
    const second = spawnTarget(configFile);
    await watch.state(at, (s) => s.reason === "started", "the restarted target process", 15_000);
    expect(watch.states.slice(at.states).find((s) => s.reason === "started")).toEqual({
      v: 1,
      tid: TID,
      state: "unavailable",
      since: expect.any(Number),
      reason: "started",
    });

    const fob1 = readFob(fob1File);
    const fob2 = readFob(fob2File);
    // Each fob speaks as itself: a frame's topic names its sender.
    const connectFob = async (fob: FobFile) => {
      const client = await connectMqtt({
        url: gateway.url,
        clientId: fob.term,
        username: fob.term,
        password: fob.secret,
        reconnectPeriod: 0,
      });
      onTestFinished(() => client.endAsync());
      return client;
    };
    const senders = new Map([
      [fob1.term, await connectFob(fob1)],
      [fob2.term, await connectFob(fob2)],
    ]);
    const sendFrame = async (fob: FobFile, seq: number) => {
      const c = watch.mark();
      const { nonce } = await watch.challenge(c, "a challenge from the restarted target");
      const e = watch.mark();
      const sender = senders.get(fob.term);
      if (!sender) throw new Error(`no connection for ${fob.term}`);
      await sender.publishAsync(watch.topics.frames(TID, fob.term), fobFrame(fob, nonce, seq), { qos: 0 });
      return watch.event(e, (ev) => ev.type !== "registry_applied", `the decision on ${fob.term}'s frame`);
    };

    // The lost gen-1 fob, with a seq the lock never saw from it: only the persisted floor stops it.
    const oldGen = await sendFrame(fob1, Date.now());
    expect(oldGen).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "old_generation",
      slot: SLOT,
      term: "FOB-1",
    });

    // The gen-2 fob replaying its last accepted seq on a fresh nonce.
    const replay = await sendFrame(fob2, fob2Seq);
    expect(replay).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_refused",
      reason: "replayed_seq",
      slot: SLOT,
      term: "FOB-2",
    });

    // Control: the same fob with the next seq is let in, so the refusals above were the state's doing.
    const next = await sendFrame(fob2, fob2Seq + 1);
    expect(next).toEqual({
      v: 1,
      tid: TID,
      ts: expect.any(Number),
      type: "auth_established",
      slot: SLOT,
      term: "FOB-2",
      gen: 2,
    });
    expect(second.proc.exitCode).toBe(null);
  });
});
