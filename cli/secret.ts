import { readFileSync } from "node:fs";
import type { CliIo, TtyInput } from "../common/cli.js";
import { SparekeyError } from "../common/errors.js";

export interface SecretSource {
  /** e.g. "password": used in messages, never the value. */
  what: string;
  /** A file holding the secret (one trailing newline is dropped). */
  file?: string | undefined;
  /** Environment variable holding the secret. */
  envName: string;
}

/**
 * The one secret reader: a file, else the environment variable, else a prompt with echo off when
 * stdin is a TTY. Never a flag (it would show in `ps` and shell history). One rule for every source:
 * empty is an error, never "no password".
 */
export async function readSecret(
  source: SecretSource,
  io: Pick<CliIo, "env" | "stdin" | "stderr">,
): Promise<string> {
  const found = readSecretWithoutPrompt(source, io);
  if (found !== undefined) return found;
  if (io.stdin?.isTTY === true && io.stdin.setRawMode) {
    const typed = await promptHidden(io.stdin, io.stderr, `${source.what}: `);
    if (typed.length === 0) throw new SparekeyError("bad_request", `the ${source.what} typed is empty`);
    return typed;
  }
  throw new SparekeyError(
    "bad_request",
    `give the ${source.what} with --${source.what}-file or ${source.envName}`,
  );
}

/** File or environment only (for a secret needed in the middle of a command, where no prompt may run). */
export function readSecretWithoutPrompt(source: SecretSource, io: Pick<CliIo, "env">): string | undefined {
  if (source.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(source.file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      throw new SparekeyError("bad_request", `cannot read the ${source.what} file ${source.file} (${code})`);
    }
    const secret = text.replace(/\r?\n$/, "");
    if (secret.length === 0)
      throw new SparekeyError("bad_request", `the ${source.what} file ${source.file} is empty`);
    return secret;
  }
  const fromEnv = io.env[source.envName];
  if (fromEnv === undefined) return undefined;
  if (fromEnv.length === 0) throw new SparekeyError("bad_request", `${source.envName} is set but empty`);
  return fromEnv;
}

/** Reads one line from a TTY in raw mode, so nothing typed is echoed. Ctrl-C or Ctrl-D cancels. */
function promptHidden(
  input: TtyInput,
  output: { write(text: string): unknown },
  prompt: string,
): Promise<string> {
  output.write(prompt);
  input.setRawMode?.(true);
  input.resume();
  return new Promise((resolve, reject) => {
    let typed = "";
    const finish = (result: () => void) => {
      input.off("data", onData);
      input.setRawMode?.(false);
      input.pause();
      output.write("\n");
      result();
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish(() => resolve(typed));
        if (ch === "\u0003" || ch === "\u0004")
          return finish(() => reject(new SparekeyError("bad_request", "cancelled at the prompt")));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    input.on("data", onData);
  });
}
