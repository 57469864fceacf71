/**
 * The platform's one retry delay: exponential backoff with "equal jitter". Attempt n waits between
 * half and all of min(maxMs, initialMs * 2^n), so replicas that failed together do not retry
 * together, and no wait is ever near zero (no busy loop against a dependency that is down). The
 * bridge retries a chunk with it, a subscription group a batch, the outbox relay its session.
 */
export interface BackoffOptions {
  /** The first attempt's ceiling, ms. Default 100. */
  initialMs?: number;
  /** The largest ceiling, ms. Default 5000. */
  maxMs?: number;
  /** Injected by tests; Math.random otherwise. */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;
  /** Delays handed out since the last `reset`. */
  attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 5_000;
    this.random = options.random ?? Math.random;
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs (got ${this.initialMs}, ${this.maxMs})`);
    }
  }

  /** The next delay, ms. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** The dependency answered again: the next failure starts from the first delay. */
  reset(): void {
    this.attempt = 0;
  }
}
