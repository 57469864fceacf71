import type { ExecutionResult } from 'graphql';

/**
 * The results waiting for one subscriber, handed to graphql-ws as an AsyncIterator. Bounded: a
 * client that stops reading its socket makes graphql-ws stop pulling, the queue fills, and at
 * `capacity` the subscriber is dropped through `onOverflow` (the socket is closed with 1013, "try
 * again later") instead of growing the gateway's memory. Other subscribers never wait for it: the
 * publisher only ever pushes.
 *
 * Hand-written because the policy is the product's: Repeater-style buffers either block the
 * publisher or drop silently, and a silently dropped location is a bug.
 */
export class SubscriberQueue implements AsyncIterableIterator<ExecutionResult> {
  private readonly items: ExecutionResult[] = [];
  private waiting: ((result: IteratorResult<ExecutionResult>) => void) | null = null;
  private ended = false;

  constructor(
    private readonly capacity: number,
    private readonly onOverflow: () => void,
    /** Runs once when the stream ends, whichever way: unregisters the subscriber. */
    private readonly onEnd: () => void,
  ) {}

  get size(): number {
    return this.items.length;
  }

  push(result: ExecutionResult): void {
    if (this.ended) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: result, done: false });
      return;
    }
    if (this.items.length >= this.capacity) {
      this.end();
      this.onOverflow();
      return;
    }
    this.items.push(result);
  }

  /** Ends the stream after what is queued (graphql-ws then sends `complete`). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const item = this.items.shift();
    if (item) return Promise.resolve({ value: item, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  /** Called by graphql-ws when the client completes the subscription or the socket closes. */
  return(): Promise<IteratorResult<ExecutionResult>> {
    this.items.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
