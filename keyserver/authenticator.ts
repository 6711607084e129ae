import type { Authenticator, Principal } from "../broker/principal.js";
import type { Logger } from "../common/log.js";
import { isId } from "../schemas/topics.js";
import { hashPassword, secretsEqual, verifyPassword, verifySecret } from "./passwords.js";
import { FailureLimiter, type RateLimitOptions } from "./rate-limit.js";
import { type KeyStore, RESERVED_ID_PREFIX } from "./store/store.js";

export interface KeyServerAuthenticatorDeps {
  store: KeyStore;
  /** The key server's own MQTT password (keyserver.secret). */
  keyserverSecret: string;
  logger: Logger;
  rateLimit?: RateLimitOptions;
}

/**
 * CONNECT checks over the store (DESIGN §5). Limits apply to password logins only: those run scrypt
 * (CPU an attacker could spend) and guard guessable secrets. Targets, fobs and the key server hold 32
 * random bytes, which no rate of guessing reaches, and locking them out would let anyone who knows an
 * id take a lock or the key server off the line.
 */
export class KeyServerAuthenticator implements Authenticator {
  private readonly limiter: FailureLimiter;
  private readonly log: Logger;
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly deps: KeyServerAuthenticatorDeps) {
    this.limiter = new FailureLimiter(deps.rateLimit);
    this.log = deps.logger.child({ component: "authenticator" });
  }

  async authenticate(
    clientId: string,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<Principal | undefined> {
    if (!isId(clientId)) return undefined;
    const secret = password?.toString("utf8") ?? "";
    if (clientId.startsWith(RESERVED_ID_PREFIX)) {
      const ok = username === "keyserver" && secretsEqual(secret, this.deps.keyserverSecret);
      return this.outcome(ok, clientId, "keyserver");
    }
    const creds = await this.deps.store.clientCredentials(clientId);
    if (creds?.kind === "target") {
      return this.outcome(
        username === clientId && verifySecret(secret, creds.secretHash),
        clientId,
        "target",
      );
    }
    if (creds?.kind === "fob") {
      const ok = !creds.disabled && username === clientId && verifySecret(secret, creds.secretHash);
      return this.outcome(ok, clientId, "terminal");
    }
    const userKey = `user:${username ?? ""}`;
    const clientKey = `client:${clientId}`;
    if (this.limiter.isBlocked(clientKey) || this.limiter.isBlocked(userKey)) {
      this.log.warn({ client_id: clientId, user: username }, "login refused: too many failures");
      return undefined;
    }
    let ok: boolean;
    if (creds?.kind === "phone") {
      // Always spend the scrypt, even for a wrong user name, so timing does not tell which part was wrong.
      const matches = await verifyPassword(secret, creds.passwordHash);
      ok = matches && username === creds.user && !creds.disabled;
    } else {
      await verifyPassword(secret, await this.dummy());
      ok = false;
    }
    if (!ok) {
      this.limiter.fail(clientKey);
      this.limiter.fail(userKey);
    } else {
      this.limiter.succeed(clientKey);
      this.limiter.succeed(userKey);
    }
    return this.outcome(ok, clientId, "terminal");
  }

  private outcome(ok: boolean, clientId: string, role: Principal["role"]): Principal | undefined {
    if (!ok) {
      this.log.info({ client_id: clientId, role }, "login failed");
      return undefined;
    }
    return { role, id: clientId };
  }

  /** A real hash with the default parameters: unknown ids cost what known ones do. */
  private dummy(): Promise<string> {
    this.dummyHash ??= hashPassword("sparekey-dummy-password");
    return this.dummyHash;
  }
}
