import { decodeToken } from "../common/jws.js";
import { probeKeyserver } from "../common/keyserver-check.js";
import type { Logger } from "../common/log.js";
import type { TerminalProfile } from "../schemas/config.js";
import type { TerminalWallet } from "../schemas/records.js";
import { TokenType } from "../schemas/tokens.js";
import type { Topics } from "../schemas/topics.js";
import { connectOnce } from "./link.js";

/**
 * The key server kids a terminal trusts: the one pinned at login and the issuer kid of every credential
 * in its wallet (so a key server that rotated its issuer key is still recognised once the phone holds a
 * credential signed with the new key).
 */
export function trustedKeyserverKids(profile: TerminalProfile, wallet?: TerminalWallet): Set<string> {
  const kids = new Set<string>();
  if (profile.keyserver_kid !== undefined) kids.add(profile.keyserver_kid);
  for (const entry of Object.values(wallet?.credentials ?? {})) {
    try {
      kids.add(decodeToken(entry.token, TokenType.credential).header.kid);
    } catch {
      // A credential the terminal cannot read names no key server.
    }
  }
  return kids;
}

/** Who the phone is on the broker: its serial, user and password, over TLS with its pinned CA. */
export function profileIdentity(profile: TerminalProfile) {
  return {
    url: profile.broker_url,
    ...(profile.tls ? { tls: { ca: profile.tls.ca_pem } } : {}),
    clientId: profile.term,
    username: profile.user,
    password: profile.password,
  };
}

/**
 * Before the connection that carries the terminal's will and retained status: a connection of its own,
 * same identity and TLS, that only reads `keyserver/status` (common/keyserver-check.ts).
 */
export async function checkProfileKeyserver(
  profile: TerminalProfile,
  topics: Topics,
  o: { logger: Logger; trusted: ReadonlySet<string>; timeoutMs?: number; connectTimeoutMs?: number },
): Promise<void> {
  const status = await probeKeyserver(
    () =>
      connectOnce({
        ...profileIdentity(profile),
        reconnectPeriod: 0,
        connectTimeout: o.connectTimeoutMs ?? 10_000,
      }),
    {
      topics,
      url: profile.broker_url,
      trusted: o.trusted,
      truster: "the terminal's profile (log in again if the gateway's issuer key really changed)",
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    },
  );
  o.logger.debug({ kid: status.kid, state: status.state }, "key server recognised");
}
