import { basename } from "node:path";
import { command, EXIT } from "../common/cli.js";
import { initDataDir } from "../keyserver/data-dir.js";

/** `sparekey init`: the one command that makes a data dir; every other one refuses a missing dir. */
export const INIT_COMMAND = command(
  {
    name: "sparekey init",
    summary: "make a new data dir: issuer key, key server secret, database (refuses an existing one)",
    usage: "sparekey init [--data DIR]",
    options: {
      data: {
        type: "string",
        help: "the data dir to make",
        env: "SPAREKEY_DATA",
        default: "./sparekey-data",
      },
    },
  },
  async (p, io) => {
    const dir = p.values.data;
    const made = await initDataDir(dir);
    io.stdout.write(
      [
        `sparekey init: made data dir ${dir} (0700)`,
        `  ${basename(made.issuer).padEnd(17)} issuer key ${made.kid} (0600)`,
        `  ${basename(made.secret).padEnd(17)} the key server's MQTT password (0600)`,
        `  ${basename(made.db).padEnd(17)} SQLite store: users, terminals, targets, keys, audit log (0600)`,
        `next: sparekey gateway --data ${dir}; keep this dir private and back it up (sparekey backup)`,
        "",
      ].join("\n"),
    );
    return EXIT.ok;
  },
);
