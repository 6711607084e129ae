import { Challenge, TargetEvent, TargetState } from "../schemas/messages.js";
import { Topics } from "../schemas/topics.js";
import { parseJson, validator } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";
import type { MqttClient } from "./mqtt.js";

export type Observed =
  | { kind: "state"; msg: TargetState }
  | { kind: "event"; msg: TargetEvent }
  | { kind: "challenge"; msg: Challenge };
export type ObservedKind = Observed["kind"];

/** A payload that failed its schema: the watcher reports it and fails every wait. */
export interface InvalidPayload {
  topic: string;
  payload: string;
  issues: string[];
}

/** Positions in the logs: a wait given one only matches what arrived after it. */
export interface Mark {
  all: number;
  states: number;
  events: number;
  challenges: number;
}

export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  what?: string;
  timeoutMs?: number;
  /** Match only messages after this position (default: everything seen since start). */
  from?: Partial<Mark>;
}

interface Waiter {
  accept: (o: Observed) => boolean;
  resolve: (o: Observed) => void;
  reject: (err: Error) => void;
}

const schemas = {
  state: validator(TargetState, "target state"),
  event: validator(TargetEvent, "target event"),
  challenge: validator(Challenge, "challenge"),
} as const;

/**
 * What a dashboard sees of one target: its retained state, and optionally its events and challenges,
 * each payload validated against its schema. An invalid payload is an error, never skipped: it is
 * kept in `invalid`, passed to `onInvalid`, and fails every pending and later wait.
 */
export class TargetWatcher implements AsyncIterable<Observed> {
  readonly states: TargetState[] = [];
  readonly events: TargetEvent[] = [];
  readonly challenges: Challenge[] = [];
  readonly invalid: InvalidPayload[] = [];
  readonly topics: Topics;
  private readonly log: Observed[] = [];
  private waiters: Waiter[] = [];
  private readonly byTopic: Map<string, ObservedKind>;
  private readonly onMessage = (topic: string, payload: Buffer) => this.receive(topic, payload);

  constructor(
    private readonly deps: {
      client: MqttClient;
      tid: string;
      prefix?: string | undefined;
      /** Default: state and events. */
      kinds?: readonly ObservedKind[];
      /** Called for every valid message in arrival order (the demo prints them). */
      onObserved?: (o: Observed) => void;
      onInvalid?: (bad: InvalidPayload) => void;
    },
  ) {
    this.topics = new Topics(deps.prefix);
    const t = this.topics;
    const kinds = deps.kinds ?? ["state", "event"];
    const topicOf = { state: t.state(deps.tid), event: t.events(deps.tid), challenge: t.challenge(deps.tid) };
    this.byTopic = new Map(kinds.map((k) => [topicOf[k], k]));
  }

  get client(): MqttClient {
    return this.deps.client;
  }

  async start(): Promise<void> {
    this.deps.client.on("message", this.onMessage);
    await this.deps.client.subscribeAsync([...this.byTopic.keys()], { qos: 1 });
  }

  async stop(): Promise<void> {
    this.deps.client.off("message", this.onMessage);
    this.failAll(new SparekeyError("not_connected", `the watcher of ${this.deps.tid} stopped`));
    if (this.deps.client.connected) await this.deps.client.unsubscribeAsync([...this.byTopic.keys()]);
  }

  mark(): Mark {
    return {
      all: this.log.length,
      states: this.states.length,
      events: this.events.length,
      challenges: this.challenges.length,
    };
  }

  /** The first message (after `from`) that `accept` takes; fails on timeout or an invalid payload. */
  waitFor(accept: (o: Observed) => boolean, opts: WaitOptions = {}): Promise<Observed> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const what = opts.what ?? "a matching message";
    const from = opts.from ?? {};
    const start = {
      all: from.all ?? 0,
      state: from.states ?? 0,
      event: from.events ?? 0,
      challenge: from.challenges ?? 0,
    };
    // Positions per kind let callers mark one log and still match across the others.
    const counts = { state: 0, event: 0, challenge: 0 };
    const after = (o: Observed, index: number) => {
      const n = counts[o.kind]++;
      return index >= start.all && n >= start[o.kind];
    };
    const bad = this.invalid[0];
    if (bad) return Promise.reject(invalidError(bad));
    const found = this.log.find((o, i) => after(o, i) && accept(o));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        accept,
        resolve: (o) => {
          clearTimeout(timer);
          resolve(o);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new SparekeyError("timeout", `waited ${timeoutMs} ms for ${what} of ${this.deps.tid}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async state(accept: (s: TargetState) => boolean, opts: WaitOptions = {}): Promise<TargetState> {
    const o = await this.waitFor((x) => x.kind === "state" && accept(x.msg), opts);
    return (o as Extract<Observed, { kind: "state" }>).msg;
  }

  async event(accept: (e: TargetEvent) => boolean, opts: WaitOptions = {}): Promise<TargetEvent> {
    const o = await this.waitFor((x) => x.kind === "event" && accept(x.msg), opts);
    return (o as Extract<Observed, { kind: "event" }>).msg;
  }

  async challenge(accept: (c: Challenge) => boolean, opts: WaitOptions = {}): Promise<Challenge> {
    const o = await this.waitFor((x) => x.kind === "challenge" && accept(x.msg), opts);
    return (o as Extract<Observed, { kind: "challenge" }>).msg;
  }

  /** Every message from now on, in order; throws on an invalid payload. Ends when the loop breaks. */
  async *[Symbol.asyncIterator](): AsyncIterator<Observed> {
    let next = this.log.length;
    for (;;) {
      const from = next;
      const o = await this.waitFor(() => true, {
        from: { all: from },
        timeoutMs: 2 ** 31 - 1,
        what: "the next message",
      });
      next = this.log.indexOf(o, from) + 1;
      yield o;
    }
  }

  private receive(topic: string, payload: Buffer): void {
    const kind = this.byTopic.get(topic);
    if (kind === undefined) return;
    const text = payload.toString("utf8");
    // An empty retained payload clears the topic; it is not a message.
    if (text.length === 0) return;
    const value = parseJson(text);
    const check = schemas[kind];
    if (!check.is(value)) {
      const bad = { topic, payload: text, issues: value === undefined ? ["not JSON"] : check.lastIssues() };
      this.invalid.push(bad);
      this.deps.onInvalid?.(bad);
      this.failAll(invalidError(bad));
      return;
    }
    const o = { kind, msg: value } as Observed;
    this.log.push(o);
    if (o.kind === "state") this.states.push(o.msg);
    else if (o.kind === "event") this.events.push(o.msg);
    else this.challenges.push(o.msg);
    this.deps.onObserved?.(o);
    const ready = this.waiters.filter((w) => w.accept(o));
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(o);
  }

  private failAll(err: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }
}

function invalidError(bad: InvalidPayload): SparekeyError {
  return new SparekeyError("schema_violation", `invalid payload on ${bad.topic}: ${bad.issues.join("; ")}`);
}
