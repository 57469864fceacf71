import type { ExecutionResult } from 'graphql';

/**
 * One subscription's live stream on one graphql-ws connection.
 *
 * graphql-ws owns the protocol (handshake, subscribe, complete, ping/pong, close codes) and iterates
 * this stream to learn when the subscription ends; the results themselves are written by the
 * stream straight to the connection as protocol-identical `next` frames. Why: a group's result is
 * serialized ONCE for all its subscribers (only the frame's id differs), and frames do not wait for
 * one another's write callback, which graphql-ws' own loop does per message (measured: see
 * bench/README.md). Hand-written because no library offers a shared, pre-serialized payload.
 */
export interface FrameSink {
  /** Writes one frame; the connection decides when its reader is too slow. */
  send(frame: string): void;
}

export class SubscriberStream implements AsyncIterableIterator<ExecutionResult> {
  private readonly prefix: string;
  private ended = false;
  private release: ((result: IteratorResult<ExecutionResult>) => void) | null = null;

  constructor(
    private readonly sink: FrameSink,
    id: string,
    /** Runs once when the stream ends, whichever way: unregisters the subscriber. */
    private readonly onEnd: () => void,
  ) {
    this.prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  /** Hands one result over, already serialized (`JSON.stringify` of the ExecutionResult). */
  deliver(payloadJson: string): void {
    if (!this.ended) this.sink.send(`${this.prefix}${payloadJson}}`);
  }

  /** Ends the stream after what was delivered (graphql-ws then sends `complete`). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    this.release?.({ value: undefined, done: true });
    this.release = null;
  }

  /** graphql-ws waits here for the end; results never pass through it. */
  next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.release = resolve;
    });
  }

  /** Called by graphql-ws when the client completes the subscription or the socket closes. */
  return(): Promise<IteratorResult<ExecutionResult>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
