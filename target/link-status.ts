import { LinkStatus } from "../schemas/messages.js";
import { parseJson, validator } from "../schemas/validate.js";

const linkStatusValidator = validator(LinkStatus, "link status");

/** A status payload from the wire, validated; undefined for anything else (including an empty retain clear). */
export function parseLinkStatus(raw: Buffer): LinkStatus | undefined {
  if (raw.length === 0 || raw.length > 1024) return undefined;
  const value = parseJson(raw.toString("utf8"));
  return linkStatusValidator.is(value) ? value : undefined;
}

/**
 * The latest link state per source (`keyserver`, or a terminal id), with the epoch rule:
 * MQTT orders messages only within a topic and a broker may deliver an old connection's will after the
 * new `online`, so a status whose epoch is below the latest seen from that source is ignored. An equal
 * epoch is the same connection: its own will (`offline`) after its `online` must count.
 */
export class LinkStates {
  private readonly latest = new Map<string, LinkStatus>();

  /** Record a status; returns false when it is stale (older epoch) and was ignored. */
  accept(source: string, status: LinkStatus): boolean {
    const seen = this.latest.get(source);
    if (seen && status.epoch < seen.epoch) return false;
    this.latest.set(source, status);
    return true;
  }

  /** Only a status actually seen counts: an unknown source is not offline. */
  offline(source: string): boolean {
    return this.latest.get(source)?.state === "offline";
  }

  /** Stop tracking a source (its topic was unsubscribed: the retained status comes again on resubscribe). */
  forget(source: string): void {
    this.latest.delete(source);
  }
}
