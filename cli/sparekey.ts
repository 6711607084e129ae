#!/usr/bin/env node
import { type CliIo, type CliNode, cliIo, EXIT, errorLine, group, runCli } from "../common/cli.js";
import { stopOnSignals } from "./signals.js";

/** A subcommand loaded on use, so `sparekey --help` does not load the broker or the store. */
function lazy(summary: string, load: () => Promise<CliNode>): CliNode {
  return {
    summary,
    help: () => summary,
    run: async (argv, io, inherited) => (await load()).run(argv, io, inherited),
  };
}

export const SPAREKEY = group({
  name: "sparekey",
  summary: "a phone as a spare electronic key, over MQTT",
  commands: {
    gateway: lazy(
      "run the broker and the key server in one process (the first thing to run)",
      async () => (await import("./gateway.js")).GATEWAY_COMMAND,
    ),
    demo: lazy(
      "play the lost-key story end to end on this machine",
      async () => (await import("./demo.js")).DEMO_COMMAND,
    ),
    admin: lazy(
      "manage users, terminals, targets, slots, grants and revocations",
      async () => (await import("./admin.js")).ADMIN_GROUP,
    ),
    target: lazy(
      "run a lock (target) from its config file",
      async () => (await import("./target.js")).TARGET_COMMAND,
    ),
    terminal: lazy("the phone: login, download a key, use it at a target", async () =>
      (await import("./terminal.js")).terminalGroup(),
    ),
  },
  footer: "`sparekey --version` prints the version. Exit codes: see the README's CLI section.",
});

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv.length === 1 && argv[0] === "--version") {
    io.stdout.write("sparekey 0.1.0\n");
    return EXIT.ok;
  }
  return runCli(SPAREKEY, argv, io);
}

// The entry point owns the only SIGINT/SIGTERM handler; commands stop on the signal it aborts.
const stop = stopOnSignals();
main(process.argv.slice(2), cliIo({ signal: stop.signal, stdin: process.stdin })).then(
  (code) => {
    process.exitCode = code;
    stop.dispose();
  },
  (err: unknown) => {
    process.stderr.write(errorLine(err));
    process.exitCode = EXIT.failed;
    stop.dispose();
  },
);
