import { command, EXIT } from "../common/cli.js";
import { createLogger } from "../common/log.js";
import { backupDataDir, restoreDataDir } from "../keyserver/backup.js";

const dataOption = (help: string) =>
  ({ type: "string", help, env: "SPAREKEY_DATA", default: "./sparekey-data" }) as const;

/** `sparekey backup`: safe while the gateway runs (SQLite's online backup), so it takes no lock. */
export const BACKUP_COMMAND = command(
  {
    name: "sparekey backup",
    summary: "copy a data dir consistently, even while the gateway runs, into a new dir",
    usage: "sparekey backup --out DIR [--data DIR]",
    options: {
      data: dataOption("the data dir to back up"),
      out: { type: "string", help: "the backup dir to make (missing or empty; 0700, files 0600)" },
    },
  },
  async (p, io) => {
    const out = p.required("out");
    const made = await backupDataDir(p.values.data, out);
    io.stdout.write(
      `sparekey backup: ${p.values.data} copied to ${made.dir}: ${made.files.join(", ")}\n` +
        `restore with: sparekey restore --from ${made.dir} --data DIR\n`,
    );
    return EXIT.ok;
  },
);

export const RESTORE_COMMAND = command(
  {
    name: "sparekey restore",
    summary: "bring a backup back into a missing or empty data dir (not while a gateway runs on it)",
    usage: "sparekey restore --from BACKUP [--data DIR] [--force]",
    options: {
      from: { type: "string", help: "the backup dir (made by `sparekey backup`)" },
      data: dataOption("the data dir to restore into"),
      force: { type: "boolean", help: "replace what the data dir holds" },
    },
  },
  (p, io) => {
    const from = p.required("from");
    const logger = createLogger("sparekey", { level: p.logLevel });
    const made = restoreDataDir(from, p.values.data, { force: p.values.force, logger });
    io.stdout.write(
      `sparekey restore: ${from} restored into ${made.dir}: ${made.files.join(", ")}\n` +
        `next: sparekey gateway --data ${made.dir}\n`,
    );
    return EXIT.ok;
  },
);
