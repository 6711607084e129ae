import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { ROOT } from "../helpers/spawn-cli.js";
import { tempDir } from "../helpers/wait.js";

/**
 * The README's walkthrough, run as written: the `sh` blocks marked `<!-- doctest: walkthrough -->`, in
 * order, in one bash with `set -euo pipefail`. HOME is a temp dir (the walkthrough's `~` paths), `sparekey`
 * on PATH runs this checkout's CLI through tsx (no build needed), and the gateway's ports come from the
 * environment variables it honours, so a developer's running gateway is never touched.
 */

const MARKER = "<!-- doctest: walkthrough -->";
const DEADLINE_MS = 300_000;

function walkthroughBlocks(markdown: string): string[] {
  const lines = markdown.split("\n");
  const blocks: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== MARKER) continue;
    let j = i + 1;
    while (lines[j]?.trim() === "") j++;
    if (lines[j] !== "```sh")
      throw new Error(`README line ${i + 1}: ${MARKER} is not followed by a \`\`\`sh block`);
    const end = lines.indexOf("```", j + 1);
    if (end < 0) throw new Error(`README line ${j + 1}: the sh block never closes`);
    blocks.push(lines.slice(j + 1, end).join("\n"));
    i = end;
  }
  return blocks;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** bash in its own process group: the group is killed at the end, background jobs included. */
function runScript(script: string, cwd: string, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn("bash", ["-c", script], {
      cwd,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const killGroup = () => {
      try {
        if (proc.pid !== undefined) process.kill(-proc.pid, "SIGKILL");
      } catch {
        // The group is gone already.
      }
    };
    onTestFinished(killGroup);
    let output = "";
    proc.stdout.on("data", (d: Buffer) => {
      output += d.toString();
    });
    proc.stderr.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const timer = setTimeout(() => {
      killGroup();
      reject(new Error(`the walkthrough ran over ${DEADLINE_MS} ms; output so far:\n${output}`));
    }, DEADLINE_MS);
    proc.once("error", reject);
    proc.once("close", (code, signal) => {
      clearTimeout(timer);
      killGroup();
      resolve({ code, signal, output });
    });
  });
}

/** The text between the first line containing `from` and the next line containing `to`. */
function between(text: string, from: string, to: string): string {
  const start = text.indexOf(from);
  const end = text.indexOf(to, start);
  if (start < 0 || end < 0) throw new Error(`no "${from}" … "${to}" in the output:\n${text}`);
  return text.slice(start, end);
}

describe("README walkthrough", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");

  it("finds the marked blocks and nothing else", () => {
    expect(walkthroughBlocks(readme).length).toBeGreaterThanOrEqual(6);
    expect(() => walkthroughBlocks(`${MARKER}\n\n\`\`\`js\nx\n\`\`\`\n`)).toThrow(/not followed by/);
    expect(walkthroughBlocks(`${MARKER}\n\`\`\`sh\na\nb\n\`\`\`\n\`\`\`sh\nnot marked\n\`\`\`\n`)).toEqual([
      "a\nb",
    ]);
  });

  it("runs as written, in order, on free ports, from a scratch dir outside the clone", {
    timeout: DEADLINE_MS + 10_000,
  }, async () => {
    const root = tempDir("sparekey-readme-");
    const home = join(root, "home");
    const bin = join(root, "bin");
    mkdirSync(home);
    mkdirSync(bin);
    const tsx = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;
    const shim = join(bin, "sparekey");
    writeFileSync(
      shim,
      `#!/bin/sh\nexec "${process.execPath}" --import "${tsx}" "${join(ROOT, "cli/sparekey.ts")}" "$@"\n`,
    );
    chmodSync(shim, 0o755);
    const inherited = Object.fromEntries(
      Object.entries(process.env).filter(
        (e): e is [string, string] => !e[0].startsWith("SPAREKEY_") && e[1] !== undefined,
      ),
    );
    const [tls, wss, plain] = [await freePort(), await freePort(), await freePort()];
    const script = ["set -euo pipefail", ...walkthroughBlocks(readme)].join("\n");
    const run = await runScript(script, root, {
      ...inherited,
      HOME: home,
      PATH: `${bin}:${process.env.PATH ?? ""}`,
      SPAREKEY_PORT: String(tls),
      SPAREKEY_WSS_PORT: String(wss),
      SPAREKEY_PLAIN_PORT: String(plain),
    });
    const out = run.output;
    expect(run.code, out).toBe(0);

    expect(out).toMatch(new RegExp(`^sparekey gateway: mqtts://\\S+:${tls} `, "m"));
    // The fob opens the door until the phone downloads the next generation; then it is refused.
    expect(between(out, "fob FOB-1 written", "logged in:")).toMatch(/mode=fob state=available/);
    expect(out).toContain("logged in: terminal PHONE-1, user alice");
    expect(out).toContain("broker verified with the given CA");
    expect(out).toContain("downloaded slot alice-key gen 2 for front-door");
    const phone = between(out, "downloaded slot alice-key", '"reason":"old_generation"');
    expect(phone).toMatch(/mode=stored state=available/);
    expect(phone).toMatch(/mode=fob state=unavailable/);
    expect(phone.split("mode=fob")[1]).not.toMatch(/state=available/);
    // Revoked: the phone never opens again.
    const revoked = between(out, "slot alice-key revoked fleet-wide", '"reason":"slot_revoked"');
    expect(revoked).toMatch(/slot=alice-key mode=stored state=unavailable/);
    expect(revoked).not.toMatch(/state=available/);
    // Relay: opened with frames the key server signed.
    expect(between(out, "user bob added", "user guard-17 added")).toMatch(/mode=relay state=available/);
    // Temporary: relative dates, two uses, the third refused.
    expect(out).toMatch(/^exp: \+1h read in UTC = /m);
    expect(out).toContain("uses        at most 2");
    const visits = between(out, "downloaded slot visit", '"reason":"uses_exhausted"');
    expect(visits).toMatch(/uses_left=1/);
    expect(visits).toMatch(/uses_left=0/);
    // Each refused phone or fob was told why by the target and stopped for good (exit 4).
    expect(out.match(/^refused: exit 4$/gm)?.length).toBe(3);
    for (const reason of ["old_generation", "slot_revoked", "uses_exhausted"])
      expect(out).toMatch(new RegExp(`^error ${reason}: target front-door refuses this key for good`, "m"));
    // Everything stayed in the scratch dir under HOME.
    expect(existsSync(join(home, "sparekey-try", "data", "sparekey.db"))).toBe(true);
  });
});
