import { KeyserverStatus, LinkStatus } from "../schemas/messages.js";
import { parseJson, validator } from "../schemas/validate.js";

const linkStatusValidator = validator(LinkStatus, "link status");
const keyserverStatusValidator = validator(KeyserverStatus, "keyserver status");

/** A status payload from the wire, validated; undefined for anything else (including an empty retain clear). */
export function parseLinkStatus(raw: Buffer): LinkStatus | undefined {
  if (raw.length === 0 || raw.length > 1024) return undefined;
  const value = parseJson(raw.toString("utf8"));
  return linkStatusValidator.is(value) ? value : undefined;
}

/** A `keyserver/status` payload from the wire (a link status with the issuer's `kid`), validated. */
export function parseKeyserverStatus(raw: Buffer): KeyserverStatus | undefined {
  if (raw.length === 0 || raw.length > 1024) return undefined;
  const value = parseJson(raw.toString("utf8"));
  return keyserverStatusValidator.is(value) ? value : undefined;
}

/**
 * Is `status` news after `seen`? MQTT orders messages only within a topic and a broker may deliver an
 * old connection's will after the new `online`, so a status whose epoch is below the latest seen from
 * that source is stale. An equal epoch is the same connection: its own will (`offline`) after its
 * `online` must count.
 */
export function newerStatus(seen: LinkStatus | undefined, status: LinkStatus): boolean {
  return seen === undefined || status.epoch >= seen.epoch;
}

/**
 * The latest link state per source, with the epoch rule (`newerStatus`). Bounded: beyond `capacity`
 * the source heard from longest ago is dropped (and is unknown again).
 */
export class LinkStates {
  private readonly latest = new Map<string, LinkStatus>();

  constructor(private readonly capacity = Number.POSITIVE_INFINITY) {}

  /** Record a status; returns false when it is stale (older epoch) and was ignored. */
  accept(source: string, status: LinkStatus): boolean {
    if (!newerStatus(this.latest.get(source), status)) return false;
    this.latest.delete(source);
    this.latest.set(source, status);
    if (this.latest.size > this.capacity) {
      const oldest = this.latest.keys().next().value;
      if (oldest !== undefined) this.latest.delete(oldest);
    }
    return true;
  }

  get(source: string): LinkStatus | undefined {
    return this.latest.get(source);
  }

  /** Only a status actually seen counts: an unknown source is not offline. */
  offline(source: string): boolean {
    return this.latest.get(source)?.state === "offline";
  }

  clear(): void {
    this.latest.clear();
  }
}
