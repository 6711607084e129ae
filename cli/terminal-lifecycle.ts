import { existsSync } from "node:fs";
import { type CliNode, command, EXIT } from "../common/cli.js";
import { acquireInstanceLock } from "../common/instance-lock.js";
import type { Logger } from "../common/log.js";
import { resolveTerminalDir } from "../terminal/files.js";
import { forgetCredential, logout } from "../terminal/lifecycle.js";
import { dirOption } from "./terminal-options.js";

/** Run `change` holding the terminal dir's lock: never under a running `terminal use`. */
function locked<T>(dir: string, logger: Logger | undefined, change: () => T): T {
  if (!existsSync(dir)) return change(); // nothing there to lock, nor to delete
  const lock = acquireInstanceLock(dir, { what: "terminal dir", ...(logger ? { logger } : {}) });
  try {
    return change();
  } finally {
    lock.release();
  }
}

export const forgetCommand = (logger: Logger | undefined): CliNode =>
  command(
    {
      name: "sparekey terminal forget",
      summary: "delete one stored key from the wallet",
      usage: "sparekey terminal forget --slot S [--dir D]",
      options: { slot: { type: "string", help: "the key slot to delete" }, dir: dirOption },
    },
    (p, io) => {
      const slot = p.required("slot");
      const dir = resolveTerminalDir(p.values.dir, {});
      const gone = locked(dir, logger, () => forgetCredential(dir, slot));
      io.stdout.write(`forgot slot ${gone.slot} gen ${gone.gen} for ${gone.tids.join(", ")}\n`);
      return EXIT.ok;
    },
  );

export const logoutCommand = (logger: Logger | undefined): CliNode =>
  command(
    {
      name: "sparekey terminal logout",
      summary: "delete the profile and its password; --all also the key pair, the wallet and the kept lists",
      usage: "sparekey terminal logout [--all] [--dir D]",
      options: {
        all: {
          type: "boolean",
          help: "also delete the key pair, the stored keys and the kept lists (a later login starts afresh)",
        },
        dir: dirOption,
      },
    },
    (p, io) => {
      const dir = resolveTerminalDir(p.values.dir, {});
      const deleted = locked(dir, logger, () => logout(dir, p.values.all));
      io.stdout.write(
        deleted.length === 0
          ? `nothing to delete in ${dir}\n`
          : `deleted ${deleted.join(", ")}\n${p.values.all ? "" : "key pair and wallet kept (--all deletes them)\n"}`,
      );
      return EXIT.ok;
    },
  );
