/**
 * Run by test/integration/keyserver-crash.test.ts as its own process, on a data dir the test seeded
 * (user alice, phone p1, target door-1, slot main with a stored grant): downloads and fleet
 * revocations in a loop, each line printed only after its op returned, until the test kills it.
 *
 *   node --import tsx test/helpers/keyserver-crash-child.ts DATA_DIR ROUND
 */
import { decideDownload, floorChange } from "../../keyserver/grants.js";
import { openKeyServerState } from "../../keyserver/state.js";

const MAX_TURNS = 5000;
const PUBLIC_KEY = "A".repeat(43);

const [dataDir, round] = process.argv.slice(2);
if (!dataDir || !round) throw new Error("usage: keyserver-crash-child DATA_DIR ROUND");
const { store } = openKeyServerState(dataDir);

for (let i = 0; i < MAX_TURNS; i++) {
  const facts = { publicKey: PUBLIC_KEY, slot: "main", now: Math.floor(Date.now() / 1000) };
  const issued = await store.issueStored({ ...facts, term: "p1", jti: `jti-${round}-${i}` }, (read) =>
    decideDownload(read, facts),
  );
  process.stdout.write(`gen ${issued.gen}\n`);
  const slot = `r${round}-${i}`;
  await store.createSlot({ slot, tids: ["door-1"] }, "admin");
  const list = await store.revokeFleet({ slot }, "admin", floorChange);
  process.stdout.write(`revoked ${slot} ${list.version}\n`);
}
