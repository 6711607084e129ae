/**
 * The real broker set up for Eclipse Paho's interoperability suite (broker/README.md, "Conformance"):
 * `npx tsx test/conformance/paho-broker.ts [port]` prints the port it listens on and runs until killed.
 */
import { startBroker } from "../../broker/server.js";
import { createLogger } from "../../common/log.js";
import { allowAllAcl, anonymousAuthenticator, anyNonEmptyClientId, PAHO_CLIENT_IDS } from "./suite-access.js";

const port = Number(process.argv[2] ?? 0);
const broker = await startBroker({
  port,
  authenticator: anonymousAuthenticator(PAHO_CLIENT_IDS),
  acl: allowAllAcl,
  isClientId: anyNonEmptyClientId,
  logger: createLogger("paho-broker", { level: "warn" }),
});
process.stdout.write(`${broker.port}\n`);
const stop = () => {
  broker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
