import type { Aedes, AedesOptions, AuthenticateError, Client } from "aedes";
import type { Logger } from "../common/log.js";
import type { Topics } from "../schemas/topics.js";
import type { Acl } from "./acl.js";
import type { BrokerLimits } from "./limits.js";
import { type Authenticator, LOGIN_DISABLED, LOGIN_LIMITED, type Principal } from "./principal.js";
import type { BrokerStats } from "./stats.js";

export interface AdapterDeps {
  readonly topics: Topics;
  readonly authenticator: Authenticator;
  /** The topic ACL: `buildAcl(TOPICS)` in the product; a conformance run injects its own. */
  readonly acl: Acl;
  /** Which CONNECT client ids are accepted at all (others get CONNACK 2): `isId` in the product. */
  readonly isClientId: (clientId: string) => boolean;
  readonly limits: BrokerLimits;
  readonly stats: BrokerStats;
  /** A child logger of the broker's. */
  readonly log: Logger;
  /** The client is authenticated as `principal`: its connection may now carry packets past the CONNECT. */
  readonly onAuthenticated: (client: Client, principal: Principal) => void;
}

/** What the broker knows of one connection, from its CONNECT on. */
interface Session {
  /** The raw CONNECT client id was a valid sparekey id (aedes replaces an empty one by a random id). */
  readonly idOk: boolean;
  readonly will: { readonly topic: string; readonly retain: boolean } | undefined;
  /** The keepalive asked for is over `keepaliveMaxS`. */
  readonly keepaliveTooLong: boolean;
  /** The peer's IP address when the connection's stream knows it (a TCP socket or the packet guard). */
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
/**
 * aedes's text when a topic or filter has more levels than its own `maxTopicLevels` (100, qlobber's
 * ceiling): it drops the client before our hooks run, so the count is taken from its event.
 */
const AEDES_TOO_DEEP_MESSAGE = "topic has too many levels";
/** Topics from the wire can be as long as a packet; a log line keeps the start. */
const LOGGED_TOPIC_CHARS = 200;

/**
 * The CONNACK refusals MQTT 3.1.1 defines and aedes takes from `authenticate` (it turns any other
 * code into 5): 2 identifier rejected, 3 server unavailable, 4 bad user name or password, 5 not
 * authorised. Codes above 5 are reserved [MQTT-3.2.2-6].
 */
type RefusalCode = 2 | 3 | 4 | 5;

function authError(code: RefusalCode, message: string): AuthenticateError {
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
  const { topics, authenticator, acl, isClientId, limits, stats, log, onAuthenticated } = deps;
  const sessions = new WeakMap<Client, Session>();

  return {
    connectTimeout: limits.connectTimeoutMs,
    // 0 turns aedes's own check off: it refuses keepalive 0 and values over its limit with CONNACK
    // 6, a reserved code [MQTT-3.2.2-6]. preConnect and authenticate do it within 3.1.1 instead.
    keepaliveLimit: 0,
    // Applies to MQTT 3.1 only in aedes; the id check in authenticate covers 3.1.1.
    maxClientsIdLength: 64,

    // The only hook that sees the raw CONNECT: keep what authenticate needs to decide.
    preConnect(client, packet, done) {
      const will = packet.will
        ? { topic: packet.will.topic, retain: packet.will.retain === true }
        : undefined;
      // Keepalive 0 is valid MQTT ("no keepalive"), but a silent peer must still be noticed: aedes
      // applies the packet's keepalive after this hook, so the broker's own idle limit goes in here.
      if (!packet.keepalive) packet.keepalive = limits.keepaliveMaxS;
      sessions.set(client, {
        idOk: isClientId(packet.clientId),
        will,
        keepaliveTooLong: packet.keepalive > limits.keepaliveMaxS,
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
      if (session.keepaliveTooLong) {
        // Mosquitto's answer to a keepalive over its max_keepalive: 3.1.1 has no better code.
        stats.keepalive_refused++;
        log.info({ client_id: client.id }, "connect refused: keepalive above the ceiling");
        done(authError(2, "keepalive above the ceiling"), false);
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
          if (will && !acl.authorizePublish(principal, will.topic, will.retain, topics)) {
            stats.will_refused++;
            log.warn(
              { client_id: client.id, topic: logged(will.topic) },
              "connect refused: will not authorised",
            );
            done(authError(5, "will not authorised"), false);
            return;
          }
          session.principal = principal;
          onAuthenticated(client, principal);
          done(null, true);
        },
        (err: unknown) => {
          stats.connect_refused++;
          log.error({ err, client_id: client.id }, "authenticator failed");
          // The store failing is not the client's fault: "server unavailable" tells it to retry.
          done(authError(3, "server unavailable"), false);
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
      if (!session || !principal || !acl.authorizePublish(principal, topic, packet.retain, topics)) {
        stats.publish_refused++;
        log.warn({ client_id: client.id, topic: logged(topic) }, "publish refused");
        return done(new Error("publish not authorised"));
      }
      // The rate is kept by the connection's PacketGuard, before aedes reads the packet.
      done(null);
    },

    authorizeSubscribe(client, sub, done) {
      const filter = sub.topic;
      if (tooDeep(filter, limits.maxTopicLevels)) {
        stats.topic_too_deep++;
        log.warn({ client_id: client.id, topic: logged(filter) }, "subscribe refused: filter too deep");
        return done(null, null);
      }
      const principal = sessions.get(client)?.principal;
      if (principal && acl.authorizeSubscribe(principal, filter, topics)) {
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
  aedes.on("clientError", (client, err) => {
    if (err.message === AEDES_TOO_DEEP_MESSAGE) stats.topic_too_deep++;
    log.debug({ client_id: client.id, error: err.message }, "client error");
  });
  aedes.on("connectionError", (_client, err) => {
    if (err.message === CONNECT_TIMEOUT_MESSAGE) stats.connect_timeout++;
    log.debug({ error: err.message }, "connection error");
  });
}
