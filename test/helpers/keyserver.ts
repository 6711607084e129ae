import { join } from "node:path";
import { onTestFinished } from "vitest";
import { startBroker } from "../../broker/server.js";
import { silentLogger } from "../../common/log.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { initDataDir } from "../../keyserver/data-dir.js";
import { KeyServer, type KeyServerDeps } from "../../keyserver/service.js";
import { createAuthenticator, type KeyServerState } from "../../keyserver/state.js";
import { tempDir } from "./wait.js";

/** A new data dir made as `sparekey init` makes it, removed when the test finishes. */
export async function tempDataDir(prefix = "sparekey-data-"): Promise<string> {
  const dir = join(tempDir(prefix), "data");
  await initDataDir(dir);
  return dir;
}

/**
 * A real broker on port 0 authenticating against `state`, and a real KeyServer over the same state
 * (polling fast), all stopped when the test finishes, with the clients `connect` made.
 */
export async function runKeyServerOn(state: KeyServerState, options: Partial<KeyServerDeps> = {}) {
  const logger = silentLogger();
  const broker = await startBroker({ port: 0, authenticator: createAuthenticator(state, logger), logger });
  const ks = new KeyServer({
    dataDir: state.dataDir,
    brokerUrl: broker.url,
    logger,
    state,
    pollMs: 20,
    ...options,
  });
  const clients: MqttClient[] = [];
  onTestFinished(async () => {
    for (const c of clients) await c.endAsync(true);
    await ks.stop();
    await broker.close();
    await state.close();
  });
  await ks.start();
  const connect = async (clientId: string, username: string, password: string) => {
    const c = await connectMqtt({ url: broker.url, clientId, username, password, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };
  return { broker, ks, connect };
}
