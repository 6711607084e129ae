import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CommandSpec, optionalInt, parseCommand } from "../common/cli.js";
import { SparekeyError } from "../common/errors.js";
import { createLogger } from "../common/log.js";
import { connectMqtt, type MqttClient } from "../common/mqtt.js";
import { addGrant, addTerminal, addUser } from "../keyserver/admin/accounts.js";
import type { AdminContext } from "../keyserver/admin/context.js";
import { writeFob } from "../keyserver/admin/fob.js";
import { createSlot, pairTarget } from "../keyserver/admin/targets.js";
import { randomSecret } from "../keyserver/passwords.js";
import { TargetEvent, TargetState } from "../schemas/messages.js";
import { Topics } from "../schemas/topics.js";
import { parseJson, validator } from "../schemas/validate.js";
import { Target } from "../target/target.js";
import { download } from "../terminal/download.js";
import { login } from "../terminal/login.js";
import { startFobUse, startUse } from "../terminal/use.js";
import { GATEWAY_DEFAULTS, startGateway } from "./gateway.js";

const SPEC: CommandSpec = {
  name: "sparekey demo",
  summary: "play the lost-key story end to end on this machine (ephemeral ports, temp dirs)",
  options: {
    "period-ms": { type: "string", help: "the target's challenge period", default: "500" },
    "keep-data": {
      type: "boolean",
      help: "keep the temp dir (data dir, configs, audit log) and print its path",
    },
  },
};

type Observed = { kind: "state"; msg: TargetState } | { kind: "event"; msg: TargetEvent };

/**
 * Watches what a dashboard would see (the target's retained state and its events) and lets the story
 * wait for a given message with a deadline.
 */
class Observer {
  private readonly seen: Observed[] = [];
  private waiters: Array<{ match: (o: Observed) => boolean; resolve: (o: Observed) => void }> = [];
  private readonly states = validator(TargetState, "state");
  private readonly events = validator(TargetEvent, "event");

  constructor(
    private readonly client: MqttClient,
    private readonly topics: { state: string; events: string },
    private readonly print: (line: string) => void,
  ) {
    client.on("message", (topic, payload) => {
      const value = parseJson(payload.toString("utf8"));
      let o: Observed | undefined;
      if (topic === topics.state && this.states.is(value)) o = { kind: "state", msg: value };
      if (topic === topics.events && this.events.is(value)) o = { kind: "event", msg: value };
      if (!o) return;
      this.seen.push(o);
      this.print(describe(o));
      for (const w of [...this.waiters]) {
        if (w.match(o)) {
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(o);
        }
      }
    });
  }

  async start(): Promise<void> {
    await this.client.subscribeAsync([this.topics.state, this.topics.events], { qos: 1 });
  }

  waitFor(what: string, match: (o: Observed) => boolean, timeoutMs: number): Promise<Observed> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x.resolve !== done);
        reject(new SparekeyError("timeout", `the demo waited ${timeoutMs} ms for ${what}`));
      }, timeoutMs);
      const done = (o: Observed) => {
        clearTimeout(timer);
        resolve(o);
      };
      this.waiters.push({ match, resolve: done });
    });
  }
}

function describe(o: Observed): string {
  if (o.kind === "state") {
    const m = o.msg;
    const who = m.term ? ` (slot ${m.slot}, by ${m.term})` : "";
    return `    ${m.tid} is ${m.state.toUpperCase()}${who} [${m.reason}]`;
  }
  const m = o.msg;
  const parts = [
    m.type,
    m.reason ? `reason=${m.reason}` : "",
    m.term ? `term=${m.term}` : "",
    m.gen ? `gen=${m.gen}` : "",
  ];
  if (m.version !== undefined) parts.push(`version=${m.version}`);
  return `    event: ${parts.filter(Boolean).join(" ")}`;
}

const isState = (state: TargetState["state"], term?: string) => (o: Observed) =>
  o.kind === "state" && o.msg.state === state && (term === undefined || o.msg.term === term);
const isEvent =
  (type: TargetEvent["type"], pred: (m: TargetEvent) => boolean = () => true) =>
  (o: Observed) =>
    o.kind === "event" && o.msg.type === type && pred(o.msg);

export async function runDemo(argv: string[]): Promise<number> {
  const parsed = parseCommand(SPEC, argv);
  if (!parsed) return 0;
  const periodMs = optionalInt(parsed.values, "period-ms", SPEC.name, 100, 5000) ?? 500;
  const keep = parsed.values["keep-data"] === true;
  const started = Date.now();
  const clock = () => `[+${((Date.now() - started) / 1000).toFixed(2).padStart(6)}s]`;
  const say = (line: string) => process.stdout.write(`${clock()} ${line}\n`);
  const logger = createLogger("sparekey-demo", { level: process.env.SPAREKEY_LOG_LEVEL ?? "warn" });
  const root = mkdtempSync(join(tmpdir(), "sparekey-demo-"));
  const cleanups: Array<() => Promise<unknown>> = [];
  const deadline = periodMs * 10 + 5000;

  try {
    say("sparekey demo: the lost-key story. A gateway (broker + key server) starts on a free port.");
    const gateway = await startGateway(
      { ...GATEWAY_DEFAULTS, data_dir: join(root, "gateway"), port: 0 },
      logger,
    );
    cleanups.push(() => gateway.stop());
    const admin: AdminContext = {
      store: gateway.state.store,
      issuer: gateway.state.issuer,
      actor: "demo-admin",
      now: Date.now,
    };
    const password = randomSecret();
    await addUser(admin, { user: "alice", password });
    await addTerminal(admin, { serial: "PHONE-ALICE", user: "alice" });
    const targetConfig = await pairTarget(admin, {
      tid: "front-door",
      out: join(root, "front-door.json"),
      brokerUrl: gateway.url,
      stateDir: join(root, "front-door-state"),
      periodMs,
    });
    await createSlot(admin, { slot: "alice-key", tids: ["front-door"] });
    await addGrant(admin, { slot: "alice-key", user: "alice", mode: "stored" });
    const fobFile = join(root, "FOB-ALICE.json");
    const fob = await writeFob(admin, {
      slot: "alice-key",
      fob: "FOB-ALICE",
      out: fobFile,
      brokerUrl: gateway.url,
    });
    await gateway.keyserver.publishNow();
    say(
      `admin: user alice, phone PHONE-ALICE, lock front-door, slot alice-key; fob FOB-ALICE written (gen ${fob.gen})`,
    );

    const topics = new Topics(targetConfig.prefix);
    const observerClient = await connectMqtt({
      url: gateway.url,
      clientId: "keyserver-demo-dashboard",
      username: "keyserver",
      password: gateway.state.secret,
      reconnectPeriod: 0,
    });
    cleanups.push(() => observerClient.endAsync());
    const observer = new Observer(
      observerClient,
      { state: topics.state("front-door"), events: topics.events("front-door") },
      say,
    );
    await observer.start();

    const target = new Target({ config: targetConfig, logger });
    const targetReady = observer.waitFor(
      "the registry to reach the lock",
      isEvent("registry_applied"),
      deadline,
    );
    await target.start();
    cleanups.push(() => target.stop());
    await targetReady;
    say(
      `the lock front-door is running (challenge every ${periodMs} ms; a session ends after 2 periods without a frame)`,
    );

    say("1. Alice holds her fob (gen 1) to the lock.");
    const fobOpens = observer.waitFor(
      "the fob to open the lock",
      isState("available", "FOB-ALICE"),
      deadline,
    );
    const fobUse = await startFobUse({ fobFile, tid: "front-door", logger });
    await fobOpens;

    say("2. Alice loses the fob: its frames stop.");
    const fobGone = observer.waitFor("the lock to fall back", isState("unavailable"), deadline);
    await fobUse.close();
    await fobGone;

    say("3. Her phone logs in with its serial, her user id and password, and downloads a key.");
    const phoneDir = join(root, "phone");
    await login({
      dir: phoneDir,
      brokerUrl: gateway.url,
      serial: "PHONE-ALICE",
      user: "alice",
      password,
      logger,
    });
    const registryBumped = observer.waitFor("the registry update", isEvent("registry_applied"), deadline);
    const cred = await download({ dir: phoneDir, target: "front-door", logger });
    say(`   the key server issued gen ${cred.gen} of slot ${cred.slot} to the phone's own key pair`);
    await registryBumped;

    say("4. The phone opens the lock.");
    const phoneOpens = observer.waitFor(
      "the phone to open the lock",
      isState("available", "PHONE-ALICE"),
      deadline,
    );
    const phoneUse = await startUse({ dir: phoneDir, tid: "front-door", logger });
    cleanups.push(() => phoneUse.close());
    await phoneOpens;

    say("5. Someone finds the lost fob and tries it.");
    const fobRefused = observer.waitFor(
      "the lost fob to be refused",
      isEvent("auth_refused", (m) => m.term === "FOB-ALICE"),
      deadline,
    );
    const finder = await startFobUse({ fobFile, tid: "front-door", logger });
    const refusal = await fobRefused;
    await finder.close();
    if (refusal.kind !== "event" || refusal.msg.reason !== "old_generation") {
      throw new SparekeyError("internal_error", "the lost fob was refused for an unexpected reason");
    }
    say("   refused: old generation. The lost fob no longer opens the door.");

    say("6. Alice walks away with her phone: its frames stop reaching the lock.");
    const walkedAway = Date.now();
    const phoneGone = observer.waitFor("the lock to fall back", isState("unavailable"), deadline);
    await phoneUse.close();
    await phoneGone;
    const took = Date.now() - walkedAway;
    say(
      `   the lock fell back to unavailable ${took} ms after the last frame (2 periods = ${2 * periodMs} ms)`,
    );
    say("done: every step of the story held.");
    return 0;
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // Teardown of a demo: keep going so every part is stopped.
      }
    }
    if (keep) process.stdout.write(`data kept in ${root}\n`);
    else rmSync(root, { recursive: true, force: true });
  }
}
