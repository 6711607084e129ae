import { SparekeyError } from "../common/errors.js";
import type { Logger } from "../common/log.js";
import { TerminalProfile } from "../schemas/config.js";
import { assertId, assertPrefix, DEFAULT_PREFIX } from "../schemas/topics.js";
import { SchemaError, validator } from "../schemas/validate.js";
import { loadOrCreateKey, writeProfile } from "./files.js";
import { connectOnce } from "./link.js";

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
}

export interface LoginResult {
  term: string;
  user: string;
  brokerUrl: string;
  prefix: string;
  kid: string;
  publicKey: string;
  keyCreated: boolean;
}

const profileValidator = validator(TerminalProfile, "terminal profile");

/**
 * Check the credentials with one CONNECT, then make the key pair if missing and write the profile.
 * Nothing is written when the broker refuses.
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
  const client = await connectOnce({
    url: profile.broker_url,
    clientId: profile.term,
    username: profile.user,
    password: profile.password,
    reconnectPeriod: 0,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
  });
  await client.endAsync();
  const { key, created } = loadOrCreateKey(o.dir, profile.term);
  writeProfile(o.dir, profile);
  log.info({ kid: key.kid, key_created: created }, "logged in");
  return {
    term: profile.term,
    user: profile.user,
    brokerUrl: profile.broker_url,
    prefix: profile.prefix,
    kid: key.kid,
    publicKey: key.publicKeyB64,
    keyCreated: created,
  };
}
