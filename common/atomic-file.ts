import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import type { Static, TSchema } from "@sinclair/typebox";
import { parseJson, validator } from "../schemas/validate.js";
import { SparekeyError } from "./errors.js";

/**
 * Write a file so that a crash at any instant leaves either the old or the new content: write a
 * temporary file, fsync it, rename over the target, fsync the directory.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A fresh, unguessable name opened exclusively: a file planted at a predictable temp path would keep
  // its own (wider) mode and receive the secret.
  const tmp = `${path}.${randomBytes(8).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", mode);
  try {
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, "r");
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

export function writeJsonAtomic(path: string, value: unknown, mode = 0o600): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/**
 * Read a JSON file and validate it against its schema. Returns undefined when the file does not
 * exist; throws SparekeyError (config_invalid) naming the file when it is unreadable or invalid.
 */
export function readJsonFile<S extends TSchema>(
  path: string,
  schema: S,
  what: string,
): Static<S> | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SparekeyError(
      "config_invalid",
      `${what} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const value = parseJson(text);
  if (value === undefined) throw new SparekeyError("config_invalid", `${what} ${path}: not valid JSON`);
  // validator() caches one compiled function per schema, with the name of its first caller: name
  // the file here, or a second file of the same schema would be reported under the first one's path.
  const v = validator(schema);
  if (v.is(value)) return value;
  throw new SparekeyError("config_invalid", `${what} ${path}: ${v.lastIssues().join("; ")}`);
}
