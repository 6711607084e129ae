import { join } from "node:path";
import { openSqliteStore } from "../../keyserver/store/sqlite/index.js";
import { tempDir } from "../helpers/wait.js";
import { storeContract } from "./store.contract.js";

storeContract("SQLite", async () => {
  const path = join(tempDir(), "sparekey.db");
  return { open: async ({ now }) => openSqliteStore(path, { now, changePollMs: 10 }) };
});
