#!/usr/bin/env node
import { type CliIo, cliIo, EXIT, errorLine, runCli } from "../common/cli.js";
import { SPAREKEY } from "./commands.js";
import { stopOnSignals } from "./signals.js";

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
