import { type RunningBroker, startBroker } from "../broker/server.js";
import { type CommandSpec, optionalString, parseCommand } from "../common/cli.js";
import { loadConfig } from "../common/config-loader.js";
import { createLogger, type Logger } from "../common/log.js";
import { MQTT_PORT } from "../common/mqtt.js";
import { KeyServer } from "../keyserver/service.js";
import { createAuthenticator, type KeyServerState, openKeyServerState } from "../keyserver/state.js";
import { GatewayConfig } from "../schemas/config.js";
import { DEFAULT_PREFIX } from "../schemas/topics.js";
import { untilSignal } from "./signals.js";

export const GATEWAY_DEFAULTS: GatewayConfig = {
  data_dir: "./sparekey-data",
  // Loopback by default: exposing door keys to a network is a decision the operator makes with --host.
  host: "127.0.0.1",
  port: MQTT_PORT,
  prefix: DEFAULT_PREFIX,
  max_packet_bytes: 65_536,
  connect_timeout_ms: 5000,
  keepalive_max_s: 300,
};

const SPEC: CommandSpec = {
  name: "sparekey gateway",
  summary: "run the MQTT broker and the key server in one process",
  options: {
    config: { type: "string", help: "JSON file with gateway settings (keys as in --help names, snake_case)" },
    data: {
      type: "string",
      help: "data dir: SQLite store, issuer key (env SPAREKEY_DATA)",
      default: GATEWAY_DEFAULTS.data_dir,
    },
    host: {
      type: "string",
      help: "address to listen on (env SPAREKEY_HOST)",
      default: GATEWAY_DEFAULTS.host,
    },
    port: {
      type: "string",
      help: "MQTT TCP port, 0 for any free port (env SPAREKEY_PORT)",
      default: String(MQTT_PORT),
    },
    prefix: { type: "string", help: "topic prefix (env SPAREKEY_PREFIX)", default: DEFAULT_PREFIX },
    "max-packet-bytes": { type: "string", help: "largest MQTT packet accepted", default: "65536" },
    "log-level": {
      type: "string",
      help: "trace|debug|info|warn|error (env SPAREKEY_LOG_LEVEL)",
      default: "info",
    },
  },
};

export interface RunningGateway {
  readonly broker: RunningBroker;
  readonly keyserver: KeyServer;
  readonly state: KeyServerState;
  readonly url: string;
  stop(): Promise<void>;
}

/** Broker and key server sharing one data dir: the broker authenticates against the key server's store. */
export async function startGateway(config: Readonly<GatewayConfig>, logger: Logger): Promise<RunningGateway> {
  const state = openKeyServerState(config.data_dir);
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
    throw err;
  }
  const keyserver = new KeyServer({
    dataDir: config.data_dir,
    brokerUrl: broker.url,
    prefix: config.prefix,
    logger,
    state,
  });
  try {
    await keyserver.start();
  } catch (err) {
    await broker.close();
    await state.close();
    throw err;
  }
  return {
    broker,
    keyserver,
    state,
    url: broker.url,
    async stop() {
      // Key server first, so its offline status goes out through a broker that is still up.
      await keyserver.stop();
      await broker.close();
      await state.close();
    },
  };
}

export async function runGateway(argv: string[]): Promise<number> {
  const parsed = parseCommand(SPEC, argv);
  if (!parsed) return 0;
  const { values } = parsed;
  const config = loadConfig({
    schema: GatewayConfig,
    what: "gateway config",
    defaults: GATEWAY_DEFAULTS,
    file: optionalString(values, "config"),
    env: {
      SPAREKEY_DATA: "data_dir",
      SPAREKEY_HOST: "host",
      SPAREKEY_PORT: "port",
      SPAREKEY_PREFIX: "prefix",
    },
    flags: {
      data_dir: optionalString(values, "data"),
      host: optionalString(values, "host"),
      port: optionalString(values, "port"),
      prefix: optionalString(values, "prefix"),
      max_packet_bytes: optionalString(values, "max-packet-bytes"),
    },
  });
  const logger = createLogger("sparekey", {
    level: optionalString(values, "log-level") ?? process.env.SPAREKEY_LOG_LEVEL ?? "info",
  });
  const gateway = await startGateway(config, logger);
  process.stdout.write(
    `sparekey gateway: broker ${gateway.url}, data dir ${config.data_dir}. Ctrl-C to stop.\n`,
  );
  await untilSignal();
  await gateway.stop();
  return 0;
}
