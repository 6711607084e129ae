import { nextMinuteBoundary } from "../common/schedule.js";
import type { Session } from "./sessions.js";

/** While a time-limited session is open the clock's mark is persisted this often: a restart must not reopen a key that expired. */
export const TIMED_MARK_PERSIST_MS = 5_000;

export interface EngineTimersDeps {
  /** The target's clock (Unix ms). */
  now: () => number;
  sessions: () => readonly Session[];
  /** End the sessions the standing rule no longer allows. */
  review: () => void;
  /** Write the state (and with it the clock's mark) soon. */
  persistMark: () => void;
}

function timeLimited(s: Session): boolean {
  return s.expMs !== undefined || s.schedule !== undefined;
}

/** The engine's timers that run only while some open session needs them. */
export class EngineTimers {
  private scheduleTimer: NodeJS.Timeout | undefined;
  private markTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: EngineTimersDeps) {}

  /** A session opened: arm what it needs. */
  opened(session: Session): void {
    if (session.schedule) this.armSchedule();
    this.armMark();
  }

  clear(): void {
    clearTimeout(this.scheduleTimer);
    this.scheduleTimer = undefined;
    clearInterval(this.markTimer);
    this.markTimer = undefined;
  }

  /**
   * While a scheduled session is open, look again at every whole minute: windows have minute
   * resolution, so the session ends at the instant its window closes.
   */
  private armSchedule(): void {
    if (this.scheduleTimer) return;
    const now = this.deps.now();
    this.scheduleTimer = setTimeout(() => {
      this.scheduleTimer = undefined;
      this.deps.review();
      if (this.deps.sessions().some((s) => s.schedule)) this.armSchedule();
    }, nextMinuteBoundary(now) - now);
  }

  private armMark(): void {
    if (this.markTimer || !this.deps.sessions().some(timeLimited)) return;
    this.markTimer = setInterval(() => {
      if (this.deps.sessions().some(timeLimited)) this.deps.persistMark();
      else {
        clearInterval(this.markTimer);
        this.markTimer = undefined;
      }
    }, TIMED_MARK_PERSIST_MS);
  }
}
