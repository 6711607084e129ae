import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { validator } from "../schemas/validate.js";
import {
  ATTACK_KINDS,
  type AttackCounts,
  type Attacker,
  type AttackerMessage,
  AttackerMessage as AttackerMessageSchema,
  type AttackJob,
  type AttackKind,
  addCounts,
  zeroCounts,
} from "./flood-ipc.js";
import { FRAME_SERIAL, LEGIT_USER, LOGIN_SERIAL, type ProbeFigures, startWorld, TID } from "./flood-world.js";
import { printJson, printTable } from "./report.js";

/**
 * A legitimate user's login latency (CONNECT → CONNACK) and frame→decision latency while N attackers
 * run against one gateway, beside the same figures with no attack, in one run. Each phase gets a fresh
 * gateway and target (flood-world.ts); the attackers run in child processes (flood-attacker.ts), so
 * their work never shares the event loop of the measurer, which runs here with the gateway and target.
 */

type Phase = AttackKind | "none";

/** Set when a phase's teardown did not finish: something of it may still hold the process open. */
let lingering = false;

interface PhaseResult {
  phase: Phase;
  seconds: number;
  attackers: number;
  login: Figures;
  frame: Figures;
  /** Times the legitimate key terminal's connection closed during the phase. */
  disconnects: number;
  /** Times the broker dropped the target during the phase (its will). */
  target_drops: number;
  attack: AttackCounts;
}

interface Figures {
  samples: number;
  errors: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

const READY_TIMEOUT_MS = 120_000;
/** After the phase, how long the attacker processes get to report before they are killed. */
const REPORT_GRACE_MS = 15_000;

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

function figures(f: ProbeFigures): Figures {
  const s = [...f.samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    samples: s.length,
    errors: f.errors,
    p50_ms: r(percentile(s, 50)),
    p99_ms: r(percentile(s, 99)),
    max_ms: r(s[s.length - 1] ?? Number.NaN),
  };
}

function canBind(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(0, address, () => s.close(() => resolve(true)));
  });
}

/**
 * Each attacker from its own loopback address (127.0.1.1, 127.0.1.2, …), as attackers from elsewhere
 * would be, while the legitimate terminals connect from 127.0.0.1: a login limit keyed on the source
 * address is then tested as it would be used. `--sources shared` puts everyone on 127.0.0.1.
 */
function attackerAddresses(n: number, spread: boolean): (string | undefined)[] {
  return Array.from({ length: n }, (_, i) =>
    spread ? `127.0.${1 + Math.floor(i / 254)}.${1 + (i % 254)}` : undefined,
  );
}

/** One attacker child process and its validated messages. */
class AttackerProcess {
  private readonly child: ChildProcess;
  private readonly inbox: AttackerMessage[] = [];
  private wake: (() => void) | undefined;
  readonly exited: Promise<void>;

  constructor(script: string) {
    const valid = validator(AttackerMessageSchema, "attacker message");
    this.child = fork(script, [], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    this.child.on("message", (m) => {
      if (!valid.is(m)) return;
      this.inbox.push(m);
      this.wake?.();
    });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    void this.exited.then(() => this.wake?.());
  }

  send(message: AttackJob | { type: "go"; ms: number }): void {
    this.child.send(message);
  }

  /** The next message, or an error when the process fails, exits or says nothing in time. */
  async next<T extends AttackerMessage["type"]>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<AttackerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.inbox.shift();
      if (m?.type === "failed") throw new Error(`attacker process failed: ${m.message}`);
      if (m?.type === type) return m as Extract<AttackerMessage, { type: T }>;
      if (m) continue;
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`attacker process exited before its ${type} message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} message from an attacker process in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}

async function runPhase(
  phase: Phase,
  o: { root: string; seconds: number; attackers: number; procs: number; addresses: (string | undefined)[] },
): Promise<PhaseResult> {
  const attackers = phase === "none" ? 0 : o.attackers;
  const world = await startWorld({
    dir: join(o.root, phase),
    kind: phase,
    attackers,
    addresses: o.addresses,
  });
  const children: AttackerProcess[] = [];
  try {
    if (phase !== "none") {
      const script = join(import.meta.dirname, "flood-attacker.js");
      const count = Math.min(o.procs, attackers);
      const slices: Attacker[][] = Array.from({ length: count }, (_, p) =>
        world.attackers.filter((_a, i) => i % count === p),
      );
      for (const slice of slices) {
        const child = new AttackerProcess(script);
        children.push(child);
        child.send({
          type: "job",
          kind: phase,
          url: world.gateway.url,
          prefix: world.prefix,
          tid: TID,
          victim: { serial: LOGIN_SERIAL, user: LEGIT_USER, term: FRAME_SERIAL, slot: "legit-a" },
          attackers: slice,
        });
      }
      await Promise.all(children.map((c) => c.next("ready", READY_TIMEOUT_MS)));
    }
    const ms = o.seconds * 1000;
    for (const c of children) c.send({ type: "go", ms });
    const deadline = Date.now() + ms;
    const dropsBefore = world.targetDrops();
    const [login, frame] = await Promise.all([world.loginProbes(deadline), world.frameProbes(deadline)]);
    const reports = await Promise.all(children.map((c) => c.next("done", REPORT_GRACE_MS)));
    process.stderr.write(`flood ${phase}: done\n`);
    return {
      phase,
      seconds: o.seconds,
      attackers,
      login: figures(login),
      frame: figures(frame),
      disconnects: frame.disconnects,
      target_drops: world.targetDrops() - dropsBefore,
      attack: reports.reduce((sum, r) => addCounts(sum, r.counts), zeroCounts()),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    if (!(await world.close())) lingering = true;
  }
}

function row(r: PhaseResult): Record<string, string | number> {
  const pair = (f: Figures) => `${f.p50_ms} / ${f.p99_ms}`;
  return {
    phase: r.phase,
    "login p50/p99 ms": pair(r.login),
    "frame→decision p50/p99 ms": pair(r.frame),
    "samples login/frame": `${r.login.samples}/${r.frame.samples}`,
    "legit errors login/frame": `${r.login.errors}/${r.frame.errors}`,
    "legit disconnects": r.disconnects,
    "target drops": r.target_drops,
    "attacker requests": r.attack.sent,
    "limited/dropped": `${r.attack.limited}/${r.attack.dropped}`,
  };
}

export async function runFloodBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      attackers: { type: "string", default: "20" },
      seconds: { type: "string", default: "10" },
      attacks: { type: "string", default: ATTACK_KINDS.join(",") },
      procs: { type: "string", default: String(Math.min(4, availableParallelism())) },
      sources: { type: "string", default: "spread" },
    },
    strict: true,
  });
  const attackers = Number(values.attackers);
  const seconds = Number(values.seconds);
  const procs = Number(values.procs);
  if (!Number.isInteger(attackers) || attackers < 1 || attackers > 2000)
    throw new Error("--attackers must be an integer from 1 to 2000");
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600)
    throw new Error("--seconds must be an integer from 1 to 600");
  if (!Number.isInteger(procs) || procs < 1 || procs > 64)
    throw new Error("--procs must be an integer from 1 to 64");
  if (values.sources !== "spread" && values.sources !== "shared")
    throw new Error("--sources must be spread or shared");
  const attacks: AttackKind[] = [];
  for (const name of String(values.attacks).split(",")) {
    const kind = ATTACK_KINDS.find((k) => k === name);
    if (!kind) throw new Error(`unknown attack ${name}; known: ${ATTACK_KINDS.join(", ")}`);
    if (!attacks.includes(kind)) attacks.push(kind);
  }
  let spread = values.sources === "spread";
  if (spread && !(await canBind("127.0.1.1"))) {
    process.stderr.write("cannot bind 127.0.1.1: every attacker connects from 127.0.0.1\n");
    spread = false;
  }
  const root = mkdtempSync(join(tmpdir(), "sparekey-flood-"));
  const results: PhaseResult[] = [];
  try {
    for (const phase of ["none" as const, ...attacks]) {
      results.push(
        await runPhase(phase, {
          root,
          seconds,
          attackers,
          procs,
          addresses: attackerAddresses(attackers, spread),
        }),
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  printTable(results.map(row));
  printJson({ sources: spread ? "spread" : "shared", phases: results });
  if (lingering) {
    process.stderr.write(
      "a component did not stop within 10 s (a target's queued events?); exiting anyway\n",
    );
    // The benchmark stops by itself: a component stuck in its stop() must not keep it running.
    process.exit(process.exitCode ?? 0);
  }
}
