/**
 * Caps the password hashes (scrypt) running at once, and queues the rest fairly: one queue per
 * source address, served round-robin, so an address that sends a thousand logins waits behind its
 * own, not in front of everyone else's. Bounded twice (per address and in all); over a bound a login
 * is refused at once rather than held in memory.
 */
export interface HashQueueOptions {
  /** Hashes running at once. scrypt runs on libuv's pool (4 threads by default), shared with file I/O. */
  maxRunning?: number;
  /** Logins waiting, all addresses together. */
  maxQueued?: number;
  /** Logins one address may have waiting. */
  maxQueuedPerSource?: number;
}

export const DEFAULT_HASH_QUEUE: Required<HashQueueOptions> = Object.freeze({
  maxRunning: 2,
  maxQueued: 256,
  maxQueuedPerSource: 4,
});

export class HashQueue {
  private readonly options: Required<HashQueueOptions>;
  private running = 0;
  private queued = 0;
  /** Insertion order is the round-robin order: a served source goes to the back. */
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(options: HashQueueOptions = {}) {
    this.options = { ...DEFAULT_HASH_QUEUE, ...options };
  }

  /** Runs `task` when its turn comes; undefined (and `task` never runs) when the queue is full. */
  run<T>(source: string, task: () => Promise<T>): Promise<T> | undefined {
    if (this.running < this.options.maxRunning && this.queued === 0) return this.start(task);
    const mine = this.waiting.get(source);
    if (this.queued >= this.options.maxQueued || (mine?.length ?? 0) >= this.options.maxQueuedPerSource)
      return undefined;
    return new Promise<T>((resolve, reject) => {
      const go = () => void this.start(task).then(resolve, reject);
      if (mine) mine.push(go);
      else this.waiting.set(source, [go]);
      this.queued++;
    });
  }

  get stats(): { running: number; queued: number } {
    return { running: this.running, queued: this.queued };
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.next();
    }
  }

  private next(): void {
    const first = this.waiting.entries().next();
    if (first.done) return;
    const [source, queue] = first.value;
    const go = queue.shift();
    this.waiting.delete(source);
    if (queue.length > 0) this.waiting.set(source, queue);
    this.queued--;
    go?.();
  }
}
