import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MqttClient } from "mqtt";
import { onTestFinished } from "vitest";

export interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

/**
 * Resolve with the next message on `topic` (exact match) that satisfies `accept`; fail with a clear
 * message when `timeoutMs` passes. The client must already be subscribed (or subscribe right after).
 */
export function nextMessage(
  client: MqttClient,
  topic: string,
  opts: { timeoutMs?: number; accept?: (m: Received) => boolean } = {},
): Promise<Received> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer, packet: { retain?: boolean }) => {
      if (t !== topic) return;
      const m = { topic: t, payload, retain: packet.retain === true };
      if (opts.accept && !opts.accept(m)) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(m);
    };
    const timer = setTimeout(() => {
      client.off("message", onMessage);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on("message", onMessage);
  });
}

/** Next JSON message on `topic` matching `accept`. */
export async function nextJson<T = Record<string, unknown>>(
  client: MqttClient,
  topic: string,
  accept: (value: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  const m = await nextMessage(client, topic, {
    timeoutMs,
    accept: (msg) => {
      try {
        return accept(JSON.parse(msg.payload.toString()) as T);
      } catch {
        return false;
      }
    },
  });
  return JSON.parse(m.payload.toString()) as T;
}

/** Poll `condition` until it is true or fail after `timeoutMs` naming `what`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A fresh temporary directory removed when the current test finishes. */
export function tempDir(prefix = "sparekey-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
