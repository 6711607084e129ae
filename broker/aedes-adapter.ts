import type { Aedes, AedesOptions, AuthenticateError, Client } from "aedes";
import type { Logger } from "../common/log.js";
import { isId, type Topics } from "../schemas/topics.js";
import { authorizePublish, authorizeSubscribe } from "./acl.js";
import { type BrokerLimits, PublishRate, REFUSE } from "./limits.js";
import { type Authenticator, LOGIN_DISABLED, LOGIN_LIMITED, type Principal } from "./principal.js";
import type { BrokerStats } from "./stats.js";

export interface AdapterDeps {
  readonly topics: Topics;
  readonly authenticator: Authenticator;
  readonly limits: BrokerLimits;
  readonly stats: BrokerStats;
  /** A child logger of the broker's. */
  readonly log: Logger;
  /** Milliseconds clock for the rate limit (tests may fake it). */
  readonly now?: () => number;
}

/** What the broker knows of one connection, from its CONNECT on. */
interface Session {
  /** The raw CONNECT client id was a valid sparekey id (aedes replaces an empty one by a random id). */
  readonly idOk: boolean;
  readonly will: { readonly topic: string; readonly retain: boolean } | undefined;
  readonly rate: PublishRate;
  /** The peer's IP address when the connection's stream knows it (a TCP socket or the size guard). */
  readonly source: string | undefined;
  principal: Principal | undefined;
}

/** The filters each client holds: shared by the subscribe hook (adds) and the unsubscribe event (removes). */
const heldFilters = new WeakMap<Client, Set<string>>();

function subscriptionCap(principal: Principal, limits: BrokerLimits): number {
  if (principal.role === "terminal") return limits.maxTerminalSubscriptions;
  if (principal.role === "target") return limits.maxTargetSubscriptions;
  return Number.POSITIVE_INFINITY;
}

/** aedes's text for its connect timer (lib/client.js); it has no error code to match instead. */
const CONNECT_TIMEOUT_MESSAGE = "connect did not arrive in time";
/** aedes's CONNACK code for a keepalive over `keepaliveLimit` (not a 3.1.1 code, but what it sends). */
const KEEPALIVE_RETURN_CODE = 6;
/** Topics from the wire can be as long as a packet; a log line keeps the start. */
const LOGGED_TOPIC_CHARS = 200;

function authError(code: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

/** More than `max` levels? Counted without splitting, so a topic of 30,000 slashes costs one scan. */
function tooDeep(topic: string, max: number): boolean {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    if (topic.charCodeAt(i) === 47 && ++levels > max) return true;
  }
  return false;
}

function logged(topic: string): string {
  return topic.length > LOGGED_TOPIC_CHARS ? `${topic.slice(0, LOGGED_TOPIC_CHARS)}…` : topic;
}

function remoteAddress(client: Client): string | undefined {
  const address: unknown = (client.conn as { remoteAddress?: unknown }).remoteAddress;
  return typeof address === "string" ? address : undefined;
}

function releaseHeld(client: Client, done: (error?: Error | null) => void): void {
  done(client.closed ? new Error("connection closed") : null);
}

type Hooks = Required<
  Pick<
    AedesOptions,
    | "preConnect"
    | "authenticate"
    | "authorizePublish"
    | "authorizeSubscribe"
    | "connectTimeout"
    | "keepaliveLimit"
    | "maxClientsIdLength"
  >
>;

/**
 * Maps the pure auth functions (principal.ts, acl.ts) and the limits onto aedes's callback hooks,
 * with aedes's semantics: an authenticate error carries CONNACK code 2–5; a refused publish is an
 * error, and aedes drops the client (MQTT 3.1.1 has no way to refuse one PUBLISH); a refused
 * subscription is `null`, which aedes answers with SUBACK 128.
 */
export function aedesHooks(deps: AdapterDeps): Hooks {
  const { topics, authenticator, limits, stats, log } = deps;
  const now = deps.now ?? Date.now;
  const sessions = new WeakMap<Client, Session>();

  return {
    connectTimeout: limits.connectTimeoutMs,
    keepaliveLimit: limits.keepaliveMaxS,
    // Applies to MQTT 3.1 only in aedes; the id check in authenticate covers 3.1.1.
    maxClientsIdLength: 64,

    // The only hook that sees the raw CONNECT: keep what authenticate needs to decide.
    preConnect(client, packet, done) {
      const will = packet.will
        ? { topic: packet.will.topic, retain: packet.will.retain === true }
        : undefined;
      sessions.set(client, {
        idOk: isId(packet.clientId),
        will,
        rate: new PublishRate(limits.publishRatePerS, limits.publishBurst, limits.publishMaxDelayMs),
        source: remoteAddress(client),
        principal: undefined,
      });
      done(null, true);
    },

    authenticate(client, username, password, done) {
      const session = sessions.get(client);
      if (!session?.idOk) {
        stats.client_id_refused++;
        log.info({ client_id: logged(client.id) }, "connect refused: bad client id");
        done(authError(2, "identifier rejected"), false);
        return;
      }
      authenticator.authenticate(client.id, username, password, session.source).then(
        (principal) => {
          if (principal === LOGIN_LIMITED) {
            stats.connect_refused++;
            log.info({ client_id: client.id }, "connect refused: login limited, try later");
            done(authError(3, "server unavailable"), false);
            return;
          }
          if (principal === LOGIN_DISABLED) {
            stats.connect_refused++;
            log.info({ client_id: client.id }, "connect refused: disabled by an admin");
            done(authError(5, "not authorized"), false);
            return;
          }
          if (!principal || principal.id !== client.id) {
            stats.connect_refused++;
            log.info({ client_id: client.id }, "connect refused: bad user name or password");
            done(authError(4, "bad user name or password"), false);
            return;
          }
          // aedes checks a will only when it fires (and not at all for a will another node replays
          // from shared persistence): refuse it here, where the client can still be told.
          const will = session.will;
          if (will && !authorizePublish(principal, will.topic, will.retain, topics)) {
            stats.will_refused++;
            log.warn(
              { client_id: client.id, topic: logged(will.topic) },
              "connect refused: will not authorised",
            );
            done(authError(5, "will not authorised"), false);
            return;
          }
          session.principal = principal;
          done(null, true);
        },
        (err: unknown) => {
          stats.connect_refused++;
          log.error({ err, client_id: client.id }, "authenticator failed");
          done(authError(5, "not authorised"), false);
        },
      );
    },

    authorizePublish(client, packet, done) {
      // A will replayed by aedes for a client of a dead cluster node: it passed the will check at CONNECT.
      if (!client) return done(null);
      const topic = packet.topic;
      // aedes's own guard, kept: clients never publish under $SYS/ (aedes issue #597).
      if (topic.startsWith("$SYS/")) return done(new Error("$SYS/ topic is reserved"));
      if (tooDeep(topic, limits.maxTopicLevels)) {
        stats.topic_too_deep++;
        log.warn({ client_id: client.id, topic: logged(topic) }, "publish refused: topic too deep");
        return done(new Error("topic too deep"));
      }
      const session = sessions.get(client);
      const principal = session?.principal;
      if (!session || !principal || !authorizePublish(principal, topic, packet.retain, topics)) {
        stats.publish_refused++;
        log.warn({ client_id: client.id, topic: logged(topic) }, "publish refused");
        return done(new Error("publish not authorised"));
      }
      // The client's own will, fired as it goes: not subject to its publish rate. Nor is the key
      // server: it answers every caller, its output is bounded by their rates and its RPC quotas, and
      // dropping it for their floods would take the key server off the line.
      if (client.closed || principal.role === "keyserver") return done(null);
      const delay = session.rate.admit(now());
      if (delay === 0) return done(null);
      if (delay === REFUSE) {
        stats.rate_limited++;
        log.warn({ client_id: client.id }, "client dropped: publish rate exceeded");
        return done(new Error("publish rate exceeded"));
      }
      stats.publish_delayed++;
      // aedes reads nothing more from this client until `done`: the hold is TCP backpressure.
      setTimeout(releaseHeld, delay, client, done).unref();
    },

    authorizeSubscribe(client, sub, done) {
      const filter = sub.topic;
      if (tooDeep(filter, limits.maxTopicLevels)) {
        stats.topic_too_deep++;
        log.warn({ client_id: client.id, topic: logged(filter) }, "subscribe refused: filter too deep");
        return done(null, null);
      }
      const principal = sessions.get(client)?.principal;
      if (principal && authorizeSubscribe(principal, filter, topics)) {
        let held = heldFilters.get(client);
        if (!held) {
          held = new Set();
          heldFilters.set(client, held);
        }
        if (!held.has(filter) && held.size >= subscriptionCap(principal, limits)) {
          stats.subscriptions_capped++;
          log.warn(
            { client_id: client.id, topic: logged(filter) },
            "subscribe refused: too many subscriptions",
          );
          return done(null, null);
        }
        held.add(filter);
        return done(null, sub);
      }
      stats.subscribe_refused++;
      log.warn({ client_id: client.id, topic: logged(filter) }, "subscribe refused");
      done(null, null);
    },
  };
}

/**
 * Logs and counts from aedes's events (aedes logs nothing itself). Only ids and error messages:
 * never a payload, and never an error object, since aedes attaches the offending packet (which
 * may be a CONNECT with its password) to some of them.
 */
export function observeAedes(aedes: Aedes, deps: Pick<AdapterDeps, "stats" | "log">): void {
  const { stats, log } = deps;
  aedes.on("clientReady", (client) => log.info({ client_id: client.id }, "client connected"));
  aedes.on("clientDisconnect", (client) => log.info({ client_id: client.id }, "client disconnected"));
  aedes.on("unsubscribe", (filters, client) => {
    const held = client ? heldFilters.get(client) : undefined;
    if (held) for (const f of filters) held.delete(f);
  });
  aedes.on("keepaliveTimeout", (client) => {
    stats.keepalive_timeout++;
    log.info({ client_id: client.id }, "keepalive timeout");
  });
  aedes.on("clientError", (client, err) =>
    log.debug({ client_id: client.id, error: err.message }, "client error"),
  );
  aedes.on("connectionError", (_client, err) => {
    if (err.message === CONNECT_TIMEOUT_MESSAGE) stats.connect_timeout++;
    if ((err as { errorCode?: unknown }).errorCode === KEEPALIVE_RETURN_CODE) stats.keepalive_refused++;
    log.debug({ error: err.message }, "connection error");
  });
}
