import { describeReason } from "../schemas/reason-classes.js";
import type { FrameSenderSnapshot } from "./frame-sender.js";

export interface StatusOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** One line of text for a snapshot; only ids, counts and states, never key material. */
export function formatStatus(s: FrameSenderSnapshot, now: number): string {
  const age =
    s.lastChallengeAt === undefined ? "none" : `${((now - s.lastChallengeAt) / 1000).toFixed(1)}s ago`;
  const uses = s.usesLeft === undefined ? "" : ` uses_left=${s.usesLeft}`;
  const line = s.line.up ? "" : ` line down: ${s.line.why ?? "unknown"}`;
  const loop = s.ended === undefined ? "" : ` ended=${s.ended}`;
  const why = s.verdict === undefined ? "" : ` target says: ${describeReason(s.verdict.reason)}`;
  return `target=${s.tid} slot=${s.slot} mode=${s.mode} state=${s.state ?? "unknown"}${uses} frames=${s.framesSent} challenge=${age}${line}${why}${loop}`;
}

/**
 * On a TTY one live line rewritten in place; elsewhere (logs, pipes) one line per change of what a
 * reader cares about (target state, uses left, the line, the target's verdict, loop end, first frame),
 * not one per frame.
 */
export class StatusLine {
  private last: FrameSenderSnapshot | undefined;
  private lastKey: string | undefined;

  constructor(private readonly deps: { out: StatusOutput; now?: () => number }) {}

  update(s: FrameSenderSnapshot): void {
    this.last = s;
    const now = (this.deps.now ?? Date.now)();
    if (this.deps.out.isTTY) {
      this.deps.out.write(`\r\x1b[2K${formatStatus(s, now)}`);
      return;
    }
    const key = `${s.state ?? ""}|${s.usesLeft ?? ""}|${s.line.why ?? ""}|${s.verdict?.reason ?? ""}|${s.ended ?? ""}|${s.framesSent > 0}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    this.deps.out.write(`${new Date(now).toISOString()} ${formatStatus(s, now)}\n`);
  }

  /** Re-render the last snapshot (the challenge age moves on a TTY). */
  refresh(): void {
    if (this.last && this.deps.out.isTTY) this.update(this.last);
  }

  /** Leave the live line so the next output starts on its own line. */
  end(): void {
    if (this.deps.out.isTTY && this.last) this.deps.out.write("\n");
  }
}
