import { type RunningBroker, startBroker } from "../broker/server.js";
import { acquireInstanceLock } from "../common/instance-lock.js";
import type { Logger } from "../common/log.js";
import { MQTT_PORT } from "../common/mqtt.js";
import { DEFAULT_CREDENTIAL_LIFETIME_S } from "../keyserver/credentials.js";
import { requireDataDir } from "../keyserver/data-dir.js";
import { KeyServer } from "../keyserver/service.js";
import { createAuthenticator, type KeyServerState, openKeyServerState } from "../keyserver/state.js";
import type { GatewayConfig } from "../schemas/config.js";
import { DEFAULT_PREFIX } from "../schemas/topics.js";

export const GATEWAY_DEFAULTS: GatewayConfig = {
  data_dir: "./sparekey-data",
  // Loopback by default: exposing door keys to a network is a decision the operator makes with --host.
  host: "127.0.0.1",
  port: MQTT_PORT,
  prefix: DEFAULT_PREFIX,
  max_packet_bytes: 65_536,
  connect_timeout_ms: 5000,
  keepalive_max_s: 300,
  credential_lifetime_s: DEFAULT_CREDENTIAL_LIFETIME_S,
};

export interface GatewayOptions {
  config: Readonly<GatewayConfig>;
  logger: Logger;
}

export interface RunningGateway {
  readonly broker: RunningBroker;
  readonly keyserver: KeyServer;
  readonly state: KeyServerState;
  readonly url: string;
  close(): Promise<void>;
}

/** Broker and key server sharing one data dir: the broker authenticates against the key server's store. */
export async function startGateway({ config, logger }: GatewayOptions): Promise<RunningGateway> {
  requireDataDir(config.data_dir);
  // One owner per data dir: a second gateway would publish a second registry from the same store.
  const lock = acquireInstanceLock(config.data_dir, { what: "data dir", logger });
  let state: KeyServerState;
  try {
    state = openKeyServerState(config.data_dir);
  } catch (err) {
    lock.release();
    throw err;
  }
  let broker: RunningBroker;
  try {
    broker = await startBroker({
      host: config.host,
      port: config.port,
      prefix: config.prefix,
      authenticator: createAuthenticator(state, logger),
      logger,
      maxPacketBytes: config.max_packet_bytes,
      connectTimeoutMs: config.connect_timeout_ms,
      keepaliveMaxS: config.keepalive_max_s,
    });
  } catch (err) {
    await state.close();
    lock.release();
    throw err;
  }
  const keyserver = new KeyServer({
    dataDir: config.data_dir,
    brokerUrl: broker.url,
    prefix: config.prefix,
    logger,
    state,
    credentialLifetimeS: config.credential_lifetime_s,
  });
  try {
    await keyserver.start();
  } catch (err) {
    await broker.close();
    await state.close();
    lock.release();
    throw err;
  }
  return {
    broker,
    keyserver,
    state,
    url: broker.url,
    async close() {
      // Key server first, so its offline status goes out through a broker that is still up.
      try {
        await keyserver.stop();
        await broker.close();
        await state.close();
      } finally {
        lock.release();
      }
    },
  };
}
