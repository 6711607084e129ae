/** The terminal dir flag every `sparekey terminal` subcommand takes. */
export const dirOption = {
  type: "string",
  help: "terminal dir",
  env: "SPAREKEY_TERMINAL_DIR",
  defaultText: "~/.sparekey/terminal",
} as const;
