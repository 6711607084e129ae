import type { Acl } from "../../broker/acl.js";
import type { Authenticator, Principal } from "../../broker/principal.js";

/**
 * Access rules for running a generic MQTT conformance suite (Eclipse Paho's interoperability
 * tests) against the real broker: its clients connect anonymously with fixed ids and use topics
 * outside the sparekey prefix, so the product's authenticator and ACL would refuse them all. Only
 * these two are swapped; the packet guard, budgets, keepalive policy and adapter stay the real ones.
 */

/** The filter the Paho suite expects a broker to refuse (its `nosubscribe_topics`): SUBACK 0x80. */
export const FORBIDDEN_FILTER = "test/nosubscribe";

/** Every topic may be published; every filter but `FORBIDDEN_FILTER` may be subscribed. */
export const allowAllAcl: Acl = {
  authorizePublish: () => true,
  authorizeSubscribe: (_principal, filter) => filter !== FORBIDDEN_FILTER,
};

/** The client ids the Paho suite connects with (its zero-length id is refused before this is asked). */
export const PAHO_CLIENT_IDS: readonly string[] = ["myclientid", "myclientid2", "clean retained"];

/**
 * Admits anonymous CONNECTs (no user name, no password) from `ids` as terminals; anything else is
 * refused as bad credentials (CONNACK 4), so authentication stays on.
 */
export function anonymousAuthenticator(ids: readonly string[]): Authenticator {
  const admitted = new Set(ids);
  return {
    async authenticate(clientId, username, password): Promise<Principal | undefined> {
      if (username !== undefined || password !== undefined || !admitted.has(clientId)) return undefined;
      return { role: "terminal", id: clientId };
    },
  };
}

/**
 * Client ids as MQTT 3.1.1 allows them (any non-empty UTF-8 string; the Paho suite uses
 * "clean retained"), within the product's length bound. Zero length stays refused (CONNACK 2).
 */
export function anyNonEmptyClientId(clientId: string): boolean {
  return clientId.length > 0 && clientId.length <= 64;
}
