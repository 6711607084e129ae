#!/usr/bin/env node
import { isSparekeyError } from "../common/errors.js";

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  gateway: {
    summary: "run the broker and the key server in one process (the first thing to run)",
    run: async (argv) => (await import("./gateway.js")).runGateway(argv),
  },
  demo: {
    summary: "play the lost-key story end to end on this machine",
    run: async (argv) => (await import("./demo.js")).runDemo(argv),
  },
  admin: {
    summary: "manage users, terminals, targets, slots, grants and revocations",
    run: async (argv) => (await import("./admin.js")).runAdmin(argv),
  },
  target: {
    summary: "run a lock (target) from its config file",
    run: async (argv) => (await import("./target.js")).runTarget(argv),
  },
  terminal: {
    summary: "the phone: login, download a key, use it at a target",
    run: async (argv) => (await import("./terminal.js")).runTerminal(argv),
  },
};

function usage(): string {
  const lines = [
    "sparekey - a phone as a spare electronic key, over MQTT",
    "",
    "usage: sparekey <command> [options]",
    "",
  ];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push("", "Run `sparekey <command> --help` for a command's options.");
  return `${lines.join("\n")}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version") {
    process.stdout.write("sparekey 0.1.0\n");
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`error bad_request: unknown command '${name}'. Try sparekey --help.\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (isSparekeyError(err)) {
      process.stderr.write(`error ${err.code}: ${err.message}\n`);
      // Bad usage exits 2 for every command, as admin, target and terminal already do.
      return err.code === "bad_request" ? 2 : 1;
    }
    process.stderr.write(
      `error internal_error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error internal_error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
