import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { readJsonFile, writeJsonAtomic } from "../../common/atomic-file.js";
import { ERROR_CODES, type ErrorCode, SparekeyError } from "../../common/errors.js";
import { signToken } from "../../common/jws.js";
import { generateSigningKey, type SigningKey, signingKeyFromSeed } from "../../common/keys.js";
import { connectMqtt, type MqttClient } from "../../common/mqtt.js";
import { MAX_COMMAND_CHARS } from "../../keyserver/operator-commands.js";
import {
  LOGIN_OP,
  LoginResult,
  REMOTE_OPS,
  type RemoteArgs,
  type RemoteOpName,
  type RemoteResult,
} from "../../keyserver/operator-ops.js";
import { OperatorFile, OperatorReply } from "../../schemas/operators.js";
import { type CommandPayload, TokenType } from "../../schemas/tokens.js";
import { DEFAULT_PREFIX, Topics } from "../../schemas/topics.js";
import { parseJson, validator } from "../../schemas/validate.js";

export const DEFAULT_OPERATOR_DIR = join(homedir(), ".sparekey", "operator");
const FILE = "operator.json";
const replyValidator = validator(OperatorReply, "operator reply");

export interface RemoteTarget {
  /** The operator dir (`--operator-dir`): holds operator.json. */
  dir: string;
  /** The gateway's URL; the file's when absent. */
  url?: string | undefined;
  password: string;
  prefix?: string;
  timeoutMs?: number;
  /** Unix milliseconds (tests). */
  now?: () => number;
}

export function readOperatorFile(dir: string): OperatorFile | undefined {
  return readJsonFile(join(dir, FILE), OperatorFile, "operator file");
}

/** A command token: signed by the operator's key, kid = its thumbprint. */
export function commandToken(
  key: SigningKey,
  op: string,
  args: Record<string, unknown>,
  iatS: number,
): { token: string; jti: string } {
  const jti = randomBytes(16).toString("base64url");
  const payload: CommandPayload = { v: 1, op, args, iat: iatS, jti };
  return { token: signToken(TokenType.command, payload, key), jti };
}

/**
 * `sparekey admin login`: the operator's command key (kept in `dir`, 0600; reused when it is this
 * account's already) bound at the key server by a login command signed with it. The account must have
 * been made on the key server's box (`sparekey admin operator add`); a key bound before is kept there.
 */
export async function operatorLogin(input: {
  dir: string;
  url: string;
  user: string;
  password: string;
  caPem?: string;
  prefix?: string;
  timeoutMs?: number;
}): Promise<{ op_id: string; kid: string }> {
  const old = readOperatorFile(input.dir);
  const seed = old?.op_id === input.user ? old.seed : generateSigningKey().seed.toString("base64url");
  mkdirSync(input.dir, { recursive: true, mode: 0o700 });
  // Written before it is bound: a key that never gets bound is harmless, a bound key lost is not.
  writeJsonAtomic(
    join(input.dir, FILE),
    {
      v: 1,
      op_id: input.user,
      broker_url: input.url,
      seed,
      ...(input.caPem !== undefined ? { ca_pem: input.caPem } : {}),
    } satisfies OperatorFile,
    0o600,
  );
  const key = signingKeyFromSeed(Buffer.from(seed, "base64url"));
  const result = await exchange(input.dir, { ...input, url: input.url }, LOGIN_OP, {
    public_key: key.publicKeyB64,
  });
  return validator(LoginResult, "login result").parse(result);
}

/** Run one op of REMOTE_OPS at the key server as a signed command; its validated result. */
export async function remoteCommand<N extends RemoteOpName>(
  target: RemoteTarget,
  op: N,
  args: RemoteArgs<N>,
): Promise<RemoteResult<N>> {
  const result = await exchange(target.dir, target, op, args);
  const schema = REMOTE_OPS[op].result;
  return validator(schema, `${op} result`).parse(result) as RemoteResult<N>;
}

async function exchange(
  dir: string,
  target: Omit<RemoteTarget, "dir">,
  op: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  const file = readOperatorFile(dir);
  if (!file)
    throw new SparekeyError(
      "not_found",
      `no operator key in ${dir}: run sparekey admin login --remote URL --user U`,
    );
  const key = signingKeyFromSeed(Buffer.from(file.seed, "base64url"));
  const topics = new Topics(target.prefix ?? DEFAULT_PREFIX);
  const client = await connectMqtt({
    url: target.url ?? file.broker_url,
    clientId: file.op_id,
    username: file.op_id,
    password: target.password,
    reconnectPeriod: 0,
    ...(file.ca_pem !== undefined ? { tls: { ca: file.ca_pem } } : {}),
  }).catch((err: unknown) => {
    throw new SparekeyError(
      "auth_failed",
      `cannot connect as operator ${file.op_id}: ${String(err)}`.slice(0, 512),
    );
  });
  try {
    const now = target.now ?? Date.now;
    const { token, jti } = commandToken(key, op, args, Math.floor(now() / 1000));
    if (token.length > MAX_COMMAND_CHARS)
      throw new SparekeyError(
        "bad_request",
        `the command is too long (at most ${MAX_COMMAND_CHARS} characters)`,
      );
    const reply = awaitReply(client, topics.operatorReplies(file.op_id), jti, target.timeoutMs ?? 10_000);
    await client.subscribeAsync(topics.operatorReplies(file.op_id), { qos: 1 });
    await topics.publish(client, "operatorCommands", { op_id: file.op_id }, token);
    const r = await reply;
    if (r.ok) return r.result ?? {};
    const code = r.error?.code ?? "internal_error";
    const known = (ERROR_CODES as readonly string[]).includes(code) ? (code as ErrorCode) : "internal_error";
    throw new SparekeyError(known, r.error?.message ?? "refused");
  } finally {
    await client.endAsync();
  }
}

function awaitReply(
  client: MqttClient,
  topic: string,
  jti: string,
  timeoutMs: number,
): Promise<OperatorReply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new SparekeyError("timeout", `no reply from the key server within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      const value = parseJson(payload.toString("utf8"));
      if (!replyValidator.is(value) || value.jti !== jti) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(value);
    };
    client.on("message", onMessage);
  });
}
