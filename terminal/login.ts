import { X509Certificate } from "node:crypto";
import { SparekeyError } from "../common/errors.js";
import { awaitKeyserver } from "../common/keyserver-check.js";
import type { Logger } from "../common/log.js";
import { TerminalProfile } from "../schemas/config.js";
import { assertId, assertPrefix, DEFAULT_PREFIX, Topics } from "../schemas/topics.js";
import { SchemaError, validator } from "../schemas/validate.js";
import { loadOrCreateKey, writeProfile } from "./files.js";
import { profileIdentity } from "./keyserver-check.js";
import { connectOnce } from "./link.js";
import { fetchBrokerCa, isCertificateRefusal, isTlsUrl } from "./tls-trust.js";

function caFingerprint(pem: string): string {
  try {
    const cert = new X509Certificate(pem);
    if (cert.ca) return cert.fingerprint256;
  } catch {
    // reported below
  }
  throw new SparekeyError("bad_request", "the CA file does not hold a PEM CA certificate");
}

export interface LoginOptions {
  dir: string;
  brokerUrl: string;
  /** The phone's serial: its MQTT client id and `term`. */
  serial: string;
  user: string;
  password: string;
  prefix?: string;
  logger: Logger;
  connectTimeoutMs?: number;
  /**
   * The gateway's CA (PEM) for an mqtts:// or wss:// broker. Without it the CA the broker presents
   * is pinned (trust on first use) and every later connection must present it again.
   */
  caPem?: string;
  /** How long to wait for the key server's `keyserver/status` (default KEYSERVER_CHECK_MS). */
  keyserverCheckMs?: number;
}

export interface LoginResult {
  term: string;
  user: string;
  brokerUrl: string;
  prefix: string;
  kid: string;
  /** The key server's issuer key id, now pinned in the profile. */
  keyserverKid: string;
  publicKey: string;
  keyCreated: boolean;
  /** The CA the profile now trusts, and how it came to. */
  tls?: { caSha256: string; trust: "given" | "first_use" };
}

const profileValidator = validator(TerminalProfile, "terminal profile");

/**
 * Check the credentials with one CONNECT (no will) and that a sparekey key server is behind the broker
 * (its `keyserver/status`, whose `kid` is pinned), then make the key pair if missing and write the
 * profile. Nothing is written, locally or on the broker, when either check fails.
 */
export async function login(o: LoginOptions): Promise<LoginResult> {
  const log = o.logger.child({ component: "terminal-login", term: o.serial });
  const profile: TerminalProfile = {
    v: 1,
    term: assertId(o.serial, "serial"),
    user: assertId(o.user, "user"),
    password: o.password,
    broker_url: o.brokerUrl,
    prefix: assertPrefix(o.prefix ?? DEFAULT_PREFIX),
  };
  try {
    profileValidator.parse(profile);
  } catch (err) {
    if (err instanceof SchemaError) throw new SparekeyError("bad_request", err.message);
    throw err;
  }
  const timeoutMs = o.connectTimeoutMs ?? 10_000;
  if (isTlsUrl(profile.broker_url)) {
    if (o.caPem !== undefined) {
      profile.tls = { ca_pem: o.caPem, ca_sha256: caFingerprint(o.caPem), trust: "given" };
    } else {
      const ca = await fetchBrokerCa(profile.broker_url, timeoutMs);
      profile.tls = { ca_pem: ca.caPem, ca_sha256: ca.caSha256, trust: "first_use" };
    }
  }
  const client = await connectOnce({
    ...profileIdentity(profile),
    reconnectPeriod: 0,
    connectTimeout: timeoutMs,
  }).catch((err: unknown) => {
    throw isCertificateRefusal(err)
      ? new SparekeyError(
          "tls_untrusted",
          `the broker at ${profile.broker_url} is not verified by the given CA`,
        )
      : err;
  });
  try {
    const status = await awaitKeyserver(client, {
      topics: new Topics(profile.prefix),
      url: profile.broker_url,
      truster: "the terminal",
      ...(o.keyserverCheckMs !== undefined ? { timeoutMs: o.keyserverCheckMs } : {}),
    });
    profile.keyserver_kid = status.kid;
  } finally {
    await client.endAsync();
  }
  const { key, created } = loadOrCreateKey(o.dir, profile.term);
  writeProfile(o.dir, profile);
  log.info({ kid: key.kid, key_created: created }, "logged in");
  return {
    term: profile.term,
    user: profile.user,
    brokerUrl: profile.broker_url,
    prefix: profile.prefix,
    kid: key.kid,
    keyserverKid: profile.keyserver_kid,
    publicKey: key.publicKeyB64,
    keyCreated: created,
    ...(profile.tls ? { tls: { caSha256: profile.tls.ca_sha256, trust: profile.tls.trust } } : {}),
  };
}
