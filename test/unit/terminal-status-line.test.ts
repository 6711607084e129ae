import { describe, expect, it } from "vitest";
import type { FrameSenderSnapshot } from "../../terminal/frame-sender.js";
import { StatusLine } from "../../terminal/status-line.js";

const NOW = Date.parse("2030-01-01T00:00:10Z");
const base: FrameSenderSnapshot = {
  tid: "lock-1",
  slot: "slot_a",
  mode: "stored",
  state: undefined,
  framesSent: 0,
  usesLeft: undefined,
  line: { up: true, connected: true, why: undefined },
  lastChallengeAt: undefined,
  verdict: undefined,
  ended: undefined,
};

function capture(isTTY: boolean): { out: { write(t: string): void; isTTY: boolean }; text: string[] } {
  const text: string[] = [];
  return { out: { write: (t: string) => text.push(t), isTTY }, text };
}

describe("StatusLine", () => {
  it("rewrites one line in place on a TTY with target, state, frames and challenge age", () => {
    const { out, text } = capture(true);
    const line = new StatusLine({ out, now: () => NOW });
    line.update({ ...base, state: "available", framesSent: 3, lastChallengeAt: NOW - 1500 });
    line.update({ ...base, state: "available", framesSent: 4, lastChallengeAt: NOW - 200 });
    line.end();
    expect(text).toEqual([
      "\r\x1b[2Ktarget=lock-1 slot=slot_a mode=stored state=available frames=3 challenge=1.5s ago",
      "\r\x1b[2Ktarget=lock-1 slot=slot_a mode=stored state=available frames=4 challenge=0.2s ago",
      "\n",
    ]);
  });

  it("writes one log-like line per change, not one per frame, when not a TTY", () => {
    const { out, text } = capture(false);
    const line = new StatusLine({ out, now: () => NOW });
    line.update({ ...base, framesSent: 1, lastChallengeAt: NOW });
    line.update({ ...base, framesSent: 2, lastChallengeAt: NOW });
    line.update({ ...base, state: "available", framesSent: 2, lastChallengeAt: NOW });
    line.update({ ...base, state: "available", framesSent: 3, lastChallengeAt: NOW });
    line.update({ ...base, state: "available", framesSent: 3, lastChallengeAt: NOW, ended: "out_of_reach" });
    expect(text).toEqual([
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=unknown frames=1 challenge=0.0s ago\n",
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=available frames=2 challenge=0.0s ago\n",
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=available frames=3 challenge=0.0s ago ended=out_of_reach\n",
    ]);
  });

  it("shows the target's verdict in words with its code, and logs each new reason once", () => {
    const { out, text } = capture(false);
    const line = new StatusLine({ out, now: () => NOW });
    const sent = { ...base, framesSent: 1, lastChallengeAt: NOW };
    line.update({ ...sent, verdict: { reason: "outside_schedule", at: NOW } });
    line.update({ ...sent, framesSent: 2, verdict: { reason: "outside_schedule", at: NOW } });
    line.update({ ...sent, verdict: { reason: "slot_revoked", at: NOW }, ended: "refused" });
    expect(text).toEqual([
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=unknown frames=1 challenge=0.0s ago target says: outside the key's weekly hours (outside_schedule)\n",
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=unknown frames=1 challenge=0.0s ago target says: this key was revoked (slot_revoked) ended=refused\n",
    ]);
  });

  it("shows uses left and a down line with its cause, and logs each change of them", () => {
    const { out, text } = capture(false);
    const line = new StatusLine({ out, now: () => NOW });
    const open = { ...base, state: "available" as const, framesSent: 1, lastChallengeAt: NOW };
    line.update({ ...open, usesLeft: 1 });
    line.update({ ...open, usesLeft: 1, line: { up: false, connected: true, why: "key server offline" } });
    line.update({ ...open, usesLeft: 1, line: { up: false, connected: true, why: "key server offline" } });
    line.update({ ...open, usesLeft: 1 });
    expect(text).toEqual([
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=available uses_left=1 frames=1 challenge=0.0s ago\n",
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=available uses_left=1 frames=1 challenge=0.0s ago line down: key server offline\n",
      "2030-01-01T00:00:10.000Z target=lock-1 slot=slot_a mode=stored state=available uses_left=1 frames=1 challenge=0.0s ago\n",
    ]);
  });
});
