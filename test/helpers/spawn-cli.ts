import { spawn } from "node:child_process";
import { onTestFinished } from "vitest";

export const ROOT = new URL("../../", import.meta.url).pathname;

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Replaces the inherited SPAREKEY_* variables (all of them are dropped first). */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Sees stdout as it comes (to signal the process once it is up). */
  onStdout?: (soFar: string, proc: ReturnType<typeof spawn>) => void;
}

/**
 * The real `sparekey` entry point run by tsx in its own process, stdout and stderr pipes (not a TTY,
 * as under systemd); killed if it outlives its deadline.
 */
export function spawnSparekey(args: readonly string[], options: SpawnOptions = {}): Promise<CliRun> {
  const { timeoutMs = 60_000 } = options;
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("SPAREKEY_")),
  );
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", "cli/sparekey.ts", ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...inherited, ...options.env },
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      options.onStdout?.(stdout, proc);
    });
    proc.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`sparekey ${args.join(" ")} ran over ${timeoutMs} ms; output:\n${stdout}${stderr}`));
    }, timeoutMs);
    onTestFinished(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    });
    proc.once("error", reject);
    proc.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
