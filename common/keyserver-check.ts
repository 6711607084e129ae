import type { KeyserverStatus } from "../schemas/messages.js";
import { TOPICS, type Topics } from "../schemas/topics.js";
import { SparekeyError } from "./errors.js";
import { parseKeyserverStatus } from "./link-status.js";
import type { MqttClient } from "./mqtt.js";

/** How long a client waits for `keyserver/status` after connecting (the retained copy comes at once). */
export const KEYSERVER_CHECK_MS = 3000;

export interface KeyserverCheck {
  topics: Topics;
  /** The broker's URL, named in the error. */
  url: string;
  /** The issuer key ids that count; absent: any well-formed status (a terminal's first login pins its kid). */
  trusted?: ReadonlySet<string>;
  /** Who trusts `trusted`, for the error ("target door-1's config", "the terminal's profile"). */
  truster: string;
  timeoutMs?: number;
}

/**
 * Wait on `client` for a `keyserver/status` of a trusted key server. The retained copy answers at once;
 * a live one (a key server still starting) counts too, up to the deadline. An `offline` status counts:
 * it is the key server's own, retained across its restart. Payloads that are not a key server status
 * are skipped, so any broker without one ends in `not_sparekey`. This tells a misconfigured broker URL
 * apart; it is no authentication: on an open broker anyone can retain a status with a public kid.
 */
export async function awaitKeyserver(client: MqttClient, o: KeyserverCheck): Promise<KeyserverStatus> {
  const topic = o.topics.keyserverStatus();
  const timeoutMs = o.timeoutMs ?? KEYSERVER_CHECK_MS;
  let settle: { resolve: (s: KeyserverStatus) => void; reject: (e: SparekeyError) => void } | undefined;
  const answer = new Promise<KeyserverStatus>((resolve, reject) => {
    settle = { resolve, reject };
  });
  answer.catch(() => undefined);
  const onMessage = (t: string, payload: Buffer) => {
    if (t !== topic) return;
    const status = parseKeyserverStatus(payload);
    if (!status) return;
    const trusted = o.trusted;
    if (!trusted || [status.kid, ...(status.kids ?? [])].some((kid) => trusted.has(kid)))
      settle?.resolve(status);
    else
      settle?.reject(
        new SparekeyError(
          "keyserver_unknown",
          `the key server at ${o.url} signs with issuer key ${status.kid}, which ${o.truster} does not trust`,
        ),
      );
  };
  const timer = setTimeout(
    () =>
      settle?.reject(
        new SparekeyError(
          "not_sparekey",
          `${o.url} is not a sparekey gateway: no ${topic} within ${timeoutMs} ms ` +
            "(another MQTT broker on that address, or a different prefix?)",
        ),
      ),
    timeoutMs,
  );
  client.on("message", onMessage);
  try {
    await client.subscribeAsync(topic, { qos: TOPICS.keyserverStatus.qos });
    return await answer;
  } finally {
    clearTimeout(timer);
    client.off("message", onMessage);
  }
}

/**
 * The check on a connection of its own, ended before the caller's real one: a will is fixed at
 * CONNECT, so the connection that carries it (and publishes a retained status or state) may only
 * start once the broker is known to be a sparekey gateway. The probe has no will and publishes nothing.
 */
export async function probeKeyserver(
  connect: () => Promise<MqttClient>,
  check: KeyserverCheck,
): Promise<KeyserverStatus> {
  const client = await connect();
  try {
    return await awaitKeyserver(client, check);
  } finally {
    await client.endAsync().catch(() => undefined);
  }
}
