import type { Role } from "../schemas/topics.js";

export type { Role };

/** Who a connected client is, decided once at CONNECT and trusted for the connection's life. */
export interface Principal {
  readonly role: Role;
  /** The client id: the key server's id, a target's tid or a terminal's serial. */
  readonly id: string;
}

/**
 * Checks a CONNECT. Implemented by the key server over its store; the broker knows nothing else of
 * users. Resolves undefined for "bad username or password"; never throws for bad input.
 */
export interface Authenticator {
  authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Principal | undefined>;
}
