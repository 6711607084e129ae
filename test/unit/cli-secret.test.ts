import { EventEmitter } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSecret } from "../../cli/secret.js";
import type { TtyInput } from "../../common/cli.js";
import { tempDir } from "../helpers/wait.js";

const source = (file?: string) => ({ what: "password", file, envName: "SPAREKEY_PASSWORD" });
const quiet = { write: () => true };

/** What a terminal in raw mode delivers: the keys as typed, nothing echoed unless the reader echoes. */
class FakeTty extends EventEmitter implements TtyInput {
  isTTY = true;
  raw: boolean[] = [];
  setRawMode(mode: boolean) {
    this.raw.push(mode);
  }
  resume() {}
  pause() {}
}

describe("the secret reader", () => {
  it("reads the file, dropping one trailing newline, before the environment", async () => {
    const file = join(tempDir(), "pw");
    writeFileSync(file, "from file\n");
    const env = { SPAREKEY_PASSWORD: "from env" };
    await expect(readSecret(source(file), { env, stderr: quiet })).resolves.toBe("from file");
  });

  it("reads the environment variable when no file is given", async () => {
    const env = { SPAREKEY_PASSWORD: "from env" };
    await expect(readSecret(source(), { env, stderr: quiet })).resolves.toBe("from env");
  });

  it.each([
    ["an empty file", "\n", {}, "is empty"],
    ["an empty variable", undefined, { SPAREKEY_PASSWORD: "" }, "SPAREKEY_PASSWORD is set but empty"],
  ])("refuses %s as bad usage", async (_what, content, env, message) => {
    let file: string | undefined;
    if (content !== undefined) {
      file = join(tempDir(), "pw");
      writeFileSync(file, content);
    }
    await expect(readSecret(source(file), { env, stderr: quiet })).rejects.toMatchObject({
      code: "bad_request",
      message: expect.stringContaining(message),
    });
  });

  it("names the ways to give it when there is none and no terminal to ask", async () => {
    await expect(readSecret(source(), { env: {}, stderr: quiet })).rejects.toMatchObject({
      code: "bad_request",
      message: "give the password with --password-file or SPAREKEY_PASSWORD",
    });
  });

  it("asks on a terminal with echo off, and refuses an empty answer", async () => {
    const written: string[] = [];
    const stderr = { write: (t: string) => written.push(t) };
    const tty = new FakeTty();
    const typed = readSecret(source(), { env: {}, stdin: tty, stderr });
    tty.emit("data", Buffer.from("hunter2x\u007f\r"));
    await expect(typed).resolves.toBe("hunter2");
    expect(tty.raw).toEqual([true, false]);
    expect(written.join("")).toBe("password: \n");

    const empty = readSecret(source(), { env: {}, stdin: tty, stderr });
    tty.emit("data", "\r");
    await expect(empty).rejects.toMatchObject({ code: "bad_request" });
  });
});
