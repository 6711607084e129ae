import { join } from "node:path";
import { onTestFinished } from "vitest";
import { GATEWAY_DEFAULTS, type RunningGateway, startGateway } from "../../cli/gateway.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import type { AdminContext } from "../../keyserver/admin/context.js";
import type { GatewayConfig } from "../../schemas/config.js";
import { Challenge, TargetEvent, TargetState } from "../../schemas/messages.js";
import { Topics } from "../../schemas/topics.js";
import { parseJson, validator } from "../../schemas/validate.js";
import { tempDir, waitFor } from "./wait.js";

/**
 * The real gateway (aedes + key server + SQLite store + the store's authenticator) on an ephemeral
 * port with a temp data dir, stopped when the test finishes.
 */
export async function startTestGateway(overrides: Partial<GatewayConfig> = {}): Promise<RunningGateway> {
  const root = tempDir("sparekey-gateway-");
  const gateway = await startGateway(
    { ...GATEWAY_DEFAULTS, data_dir: join(root, "data"), port: 0, ...overrides },
    silentLogger(),
  );
  onTestFinished(() => gateway.stop());
  return gateway;
}

/** What `sparekey admin` works with, on the gateway's own store and issuer. */
export function adminContext(gateway: RunningGateway, actor = "test-admin"): AdminContext {
  return { store: gateway.state.store, issuer: gateway.state.issuer, actor, now: Date.now };
}

/** Run one admin function (`addUser`, `pairTarget`, ...) against the gateway, as `sparekey admin` would. */
export function runAdmin<I, R>(
  gateway: RunningGateway,
  fn: (ctx: AdminContext, input: I) => Promise<R>,
  input: I,
): Promise<R> {
  return fn(adminContext(gateway), input);
}

/** A client with the key server's role: the only role (besides the target) that sees state and events. */
export async function connectAsKeyserver(gateway: RunningGateway, name: string): Promise<MqttClient> {
  const client = await connectMqtt({
    url: gateway.url,
    clientId: `keyserver-${name}`,
    username: "keyserver",
    password: gateway.state.secret,
    reconnectPeriod: 0,
  });
  onTestFinished(() => client.endAsync());
  return client;
}

const states = validator(TargetState, "state");
const events = validator(TargetEvent, "event");
const challenges = validator(Challenge, "challenge");

/**
 * What a dashboard sees of one target: every state, event and challenge, validated, in arrival order.
 * Waits take a position (`mark()`) so a test only matches what came after a step.
 */
export async function observeTarget(gateway: RunningGateway, tid: string, prefix?: string) {
  const topics = new Topics(prefix);
  const client = await connectAsKeyserver(gateway, `observer-${tid}`);
  const seen = {
    states: [] as TargetState[],
    events: [] as TargetEvent[],
    challenges: [] as Challenge[],
    /** Messages that failed their schema: a test may assert there were none. */
    invalid: [] as Array<{ topic: string; payload: string }>,
  };
  const t = { state: topics.state(tid), events: topics.events(tid), challenge: topics.challenge(tid) };
  client.on("message", (topic, payload) => {
    const value = parseJson(payload.toString("utf8"));
    if (topic === t.state && states.is(value)) seen.states.push(value);
    else if (topic === t.events && events.is(value)) seen.events.push(value);
    else if (topic === t.challenge && challenges.is(value)) seen.challenges.push(value);
    else seen.invalid.push({ topic, payload: payload.toString("utf8") });
  });
  await client.subscribeAsync([t.state, t.events, t.challenge], { qos: 1 });

  async function find<T>(
    list: T[],
    from: number,
    accept: (m: T) => boolean,
    what: string,
    timeoutMs: number,
  ) {
    let found: T | undefined;
    await waitFor(
      () => {
        found = list.slice(from).find(accept);
        return found !== undefined;
      },
      what,
      timeoutMs,
    );
    if (found === undefined) throw new Error(`no ${what}`);
    return found;
  }

  return {
    client,
    topics,
    ...seen,
    /** Positions to pass to the waits: only later messages match. */
    mark(): { states: number; events: number; challenges: number } {
      return { states: seen.states.length, events: seen.events.length, challenges: seen.challenges.length };
    },
    state(
      from: { states: number },
      accept: (s: TargetState) => boolean,
      what: string,
      timeoutMs = 5000,
    ): Promise<TargetState> {
      return find(seen.states, from.states, accept, what, timeoutMs);
    },
    event(
      from: { events: number },
      accept: (e: TargetEvent) => boolean,
      what: string,
      timeoutMs = 5000,
    ): Promise<TargetEvent> {
      return find(seen.events, from.events, accept, what, timeoutMs);
    },
    challenge(from: { challenges: number }, what: string, timeoutMs = 5000): Promise<Challenge> {
      return find(seen.challenges, from.challenges, () => true, what, timeoutMs);
    },
  };
}

export type TargetObserver = Awaited<ReturnType<typeof observeTarget>>;
