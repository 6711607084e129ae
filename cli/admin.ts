import { type CliNode, cliIo, group, runCli } from "../common/cli.js";
import { grant, revokeGrantCommand, terminalAdd, userAdd } from "./admin/accounts.js";
import { ADMIN_GLOBALS } from "./admin/common.js";
import { audit, list } from "./admin/reports.js";
import { revocations, revoke, slotCreate, targetPair, writeFobCommand } from "./admin/targets.js";

const one = (name: string, summary: string, sub: string, node: CliNode): CliNode =>
  group({ name: `sparekey admin ${name}`, summary, globals: ADMIN_GLOBALS, commands: { [sub]: node } });

export const ADMIN_GROUP = group({
  name: "sparekey admin",
  summary: "manage users, terminals, targets, slots and keys in a key server's data dir",
  globals: ADMIN_GLOBALS,
  commands: {
    user: one("user", "user add: add a user", "add", userAdd),
    terminal: one("terminal", "terminal add: register a phone for a user", "add", terminalAdd),
    target: one("target", "target pair: pair a target and write its config file", "pair", targetPair),
    slot: one("slot", "slot create: create a key slot for one or more targets", "create", slotCreate),
    grant,
    "revoke-grant": revokeGrantCommand,
    "write-fob": writeFobCommand,
    revoke,
    revocations,
    list,
    audit,
  },
});

export interface AdminIo {
  out(text: string): void;
  err(text: string): void;
  env?: Record<string, string | undefined>;
}

/** `sparekey admin …`: prints one result line, or `error <code>: <message>` on stderr; returns the exit code. */
export function runAdmin(argv: string[], io?: AdminIo): Promise<number> {
  return runCli(
    ADMIN_GROUP,
    argv,
    cliIo(
      io
        ? {
            stdout: { write: (t: string) => io.out(t) },
            stderr: { write: (t: string) => io.err(t) },
            ...(io.env ? { env: io.env } : {}),
          }
        : {},
    ),
  );
}
