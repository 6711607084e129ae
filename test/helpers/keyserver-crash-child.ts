/**
 * Run by test/integration/keyserver-crash.test.ts as its own process, on a data dir the test seeded
 * (user alice, phones p1 and p2, target door-1, slot main with a stored grant): downloads by the two
 * phones in turn (each one a new generation: the other phone holds the current one) and fleet
 * revocations in a loop, each line printed only after its op returned, until the test kills it.
 *
 *   node --import tsx test/helpers/keyserver-crash-child.ts DATA_DIR ROUND
 */
import { decideDownload, floorChange } from "../../keyserver/grants.js";
import { openKeyServerState } from "../../keyserver/state.js";

const MAX_TURNS = 5000;
const PHONES = [
  { term: "p1", publicKey: "A".repeat(43) },
  { term: "p2", publicKey: "B".repeat(43) },
] as const;

const [dataDir, round] = process.argv.slice(2);
if (!dataDir || !round) throw new Error("usage: keyserver-crash-child DATA_DIR ROUND");
const { store } = openKeyServerState(dataDir);

for (let i = 0; i < MAX_TURNS; i++) {
  // Generation g went to PHONES[(g - 1) % 2], so the other phone's download raises it, across kills too.
  const current = (await store.getSlot("main"))?.gen ?? 0;
  const phone = PHONES[current % 2] ?? PHONES[0];
  const facts = { publicKey: phone.publicKey, slot: "main", now: Math.floor(Date.now() / 1000) };
  const issued = await store.issueStored({ ...facts, term: phone.term, jti: `jti-${round}-${i}` }, (read) =>
    decideDownload(read, facts),
  );
  process.stdout.write(`gen ${issued.gen}\n`);
  const slot = `r${round}-${i}`;
  await store.createSlot({ slot, tids: ["door-1"] }, "admin");
  const list = await store.revokeFleet({ slot }, "admin", floorChange);
  process.stdout.write(`revoked ${slot} ${list.version}\n`);
}
