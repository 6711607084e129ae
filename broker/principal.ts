import type { Role } from "../schemas/topics.js";

export type { Role };

/** Who a connected client is, decided once at CONNECT and trusted for the connection's life. */
export interface Principal {
  readonly role: Role;
  /** The client id: the key server's id, a target's tid, a terminal's serial or a dashboard's own choice. */
  readonly id: string;
  /**
   * The targets this principal may watch (a dashboard account's list, or every one): when set, each
   * `{tid}` level of its topics must be one of them, and `+` may stand there only for "all". Read at
   * CONNECT: a changed list applies from the account's next connection.
   */
  readonly tids?: ReadonlySet<string> | "all";
  /** A dashboard's account (its MQTT user name); absent for other roles. */
  readonly account?: string;
}

/** The `{param}` level that a principal's `tids` bounds. */
export const SCOPED_PARAM = "tid";

/**
 * Resolved when a login was not checked: its source failed too often lately, or too many logins wait
 * for a password hash. The broker tells the client with CONNACK 3 (server unavailable: try later).
 */
export const LOGIN_LIMITED = "limited";

/**
 * Resolved when the credentials are right but an admin disabled the client (or its user). The broker
 * answers CONNACK 5 (not authorized), so the client can tell it from a wrong password.
 */
export const LOGIN_DISABLED = "disabled";

/**
 * Checks a CONNECT. Implemented by the key server over its store; the broker knows nothing else of
 * users. Resolves undefined for "bad username or password"; never throws for bad input. `source` is
 * the peer's IP address, when the listener knows it.
 */
export interface Authenticator {
  authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
    source?: string,
  ): Promise<Principal | typeof LOGIN_LIMITED | typeof LOGIN_DISABLED | undefined>;
}
