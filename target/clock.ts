/** Before this instant (2024-01-01) a wall clock is certainly wrong: the target has no real time yet. */
export const CLOCK_EPOCH_MS = Date.UTC(2024, 0, 1);
/** How far the wall clock may lag the persisted high-water mark before it is distrusted. */
export const CLOCK_TOLERANCE_MS = 5 * 60_000;

/**
 * The target's own clock: never runs backwards past a persisted high-water mark, and says
 * when it cannot be trusted, so time-limited keys are refused rather than judged by a wrong clock.
 */
export class TargetClock {
  private floor: number;
  constructor(
    floorMs: number,
    private readonly wall: () => number = Date.now,
    private readonly toleranceMs = CLOCK_TOLERANCE_MS,
  ) {
    this.floor = floorMs;
  }

  /** max(wall clock, high-water mark); raises the mark when the wall clock is trusted and ahead. */
  now(): number {
    const wall = this.wall();
    if (wall > this.floor && wall >= CLOCK_EPOCH_MS) this.floor = wall;
    return Math.max(wall, this.floor);
  }

  trusted(): boolean {
    const wall = this.wall();
    return wall >= CLOCK_EPOCH_MS && wall >= this.floor - this.toleranceMs;
  }

  /** The high-water mark to persist. */
  floorMs(): number {
    return this.floor;
  }
}
