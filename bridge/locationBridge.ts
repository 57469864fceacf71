import { Backoff, type BackoffOptions } from '../lib/backoff';
import { parseLocationMessage, type LocationEvent, type LocationMessage } from '../lib/locationEvent';

/**
 * The bridge's core, free of any transport: it turns one partition's messages into Redis
 * publications, accepted locations and dead letters, and says which offset is safe to commit. The
 * kafkajs adapter (`kafkaConsumer.ts`) feeds it; the ioredis publisher (`redisPublisher.ts`), the
 * PostgreSQL acceptor (`postgresAcceptor.ts`) and the Kafka DLQ producer implement its three
 * collaborators. Unit tests drive it with fakes.
 *
 * A valid message either carries the platform's `seq` (the outbox relay published it: it goes to
 * Redis) or does not (another producer wrote it, as CONTRACT.md allows: it is accepted into
 * PostgreSQL like `recordLocation` would, and reaches Redis later, from the outbox relay, with its
 * sequence). So subscribers only ever see sequenced events, in the platform's order.
 *
 * Guarantees, per partition:
 * - sequenced events are handed to the publisher in offset order, in one call per chunk, so a
 *   publisher that writes them on one connection keeps per-device order;
 * - an offset is reported safe only once every message up to and including it was published
 *   (sequenced), committed to PostgreSQL (unsequenced) or dead-lettered (invalid, or refused by
 *   the acceptor): a failure reports nothing for the failed chunk, and the caller replays it;
 *   duplicates after a retry are allowed (the acceptor recognises a location it already stored by
 *   its id), gaps are not.
 */

export type HeaderValue = Buffer | string | (Buffer | string)[] | undefined;
export type MessageHeaders = Record<string, HeaderValue>;

/** One Kafka record as the bridge needs it (kafkajs' `KafkaMessage` fits structurally). */
export interface RawMessage {
  key: Buffer | string | null;
  value: Buffer | string | null;
  headers?: MessageHeaders;
  /** Decimal string, as Kafka clients carry offsets (int64). */
  offset: string;
  /** Producer timestamp in epoch ms (decimal string), used only for the event-age metric. */
  timestamp?: string;
}

export interface PartitionBatch {
  topic: string;
  partition: number;
  messages: readonly RawMessage[];
}

export interface MessageSource {
  topic: string;
  partition: number;
  offset: string;
}

export interface DeadLetter {
  key: Buffer | string | null;
  value: Buffer | string | null;
  headers: MessageHeaders;
  /** Why the message is not a location (`parseLocationMessage`'s reason) or was refused (the acceptor's). */
  reason: string;
  source: MessageSource;
}

export interface LocationPublisher {
  /** Publishes the events in the given order; resolves only once Redis acknowledged all of them. */
  publish(events: readonly LocationEvent[]): Promise<void>;
}

/** What became of the unsequenced locations handed to a `LocationAcceptor`. */
export interface AcceptOutcome {
  /** Stored now, each with the next sequence of its device. */
  stored: number;
  /** Already stored (a replay of the message, or a repeat of it in the same call): nothing written. */
  replayed: number;
  /** Not a location the platform can accept; `index` is the position in the call, `reason` goes to the DLQ. */
  refused: { index: number; reason: string }[];
}

export interface LocationAcceptor {
  /**
   * Accepts locations that came without a `seq` as `recordLocation` would (next per-device
   * sequence, location row, outbox row, relay notified) and resolves only once that is committed.
   */
  accept(locations: readonly LocationMessage[]): Promise<AcceptOutcome>;
}

export interface DeadLetterSink {
  /** Stores the letters durably (acknowledged by the broker) before resolving. */
  send(letters: readonly DeadLetter[]): Promise<void>;
}

/** Hooks for metrics; every method is optional so tests and tools can pass nothing. */
export interface BridgeObserver {
  published?(count: number, durationMs: number, messages: readonly RawMessage[]): void;
  deadLettered?(letters: readonly DeadLetter[]): void;
  /** Unsequenced locations were stored (or found already stored) in PostgreSQL. */
  accepted?(outcome: AcceptOutcome): void;
  /** A chunk failed and will be retried; `attempt` counts from 1 for each chunk. */
  failed?(error: unknown, attempt: number): void;
}

export interface ChunkOutcome {
  /** The offset of the last message handled: every message up to and including it is done. */
  resolvedOffset: string | null;
  published: number;
  /** Unsequenced locations stored in PostgreSQL, or recognised as already stored. */
  accepted: number;
  deadLettered: number;
}

/** A chunk could not be handed off; nothing of it counts as done. Always worth retrying. */
export class BridgeDeliveryError extends Error {
  readonly retriable = true;
  constructor(
    message: string,
    readonly source: { topic: string; partition: number; firstOffset: string | null },
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'BridgeDeliveryError';
  }
}

export interface LocationBridgeOptions {
  publisher: LocationPublisher;
  acceptor: LocationAcceptor;
  deadLetters: DeadLetterSink;
  observer?: BridgeObserver;
}

export interface Classified {
  /** Sequenced events, in offset order, and the messages they came from. */
  events: LocationEvent[];
  valid: RawMessage[];
  /** Valid locations without a `seq` (other producers), for the acceptor. */
  unsequenced: { message: RawMessage; location: LocationMessage }[];
  deadLetters: DeadLetter[];
}

/** Splits a batch's messages into sequenced events, unsequenced locations and dead letters, keeping offset order. */
export function classify(batch: PartitionBatch): Classified {
  const classified: Classified = { events: [], valid: [], unsequenced: [], deadLetters: [] };
  for (const message of batch.messages) {
    const parsed = parseLocationMessage(message.key, message.value);
    if (!parsed.ok) {
      classified.deadLetters.push(deadLetter(batch, message, parsed.reason));
    } else if (parsed.event.seq === undefined) {
      classified.unsequenced.push({ message, location: parsed.event });
    } else {
      classified.events.push({ ...parsed.event, seq: parsed.event.seq });
      classified.valid.push(message);
    }
  }
  return classified;
}

function deadLetter(batch: PartitionBatch, message: RawMessage, reason: string): DeadLetter {
  return {
    key: message.key,
    value: message.value,
    headers: message.headers ?? {},
    reason,
    source: { topic: batch.topic, partition: batch.partition, offset: message.offset },
  };
}

export class LocationBridge {
  private readonly publisher: LocationPublisher;
  private readonly acceptor: LocationAcceptor;
  private readonly deadLetters: DeadLetterSink;
  private readonly observer: BridgeObserver;

  constructor(options: LocationBridgeOptions) {
    this.publisher = options.publisher;
    this.acceptor = options.acceptor;
    this.deadLetters = options.deadLetters;
    this.observer = options.observer ?? {};
  }

  /**
   * Handles one chunk (consecutive messages of one partition): accepts the unsequenced locations
   * first (what the acceptor refuses joins the dead letters), then publishes the sequenced events
   * and dead-letters the rest, and reports the chunk's last offset as safe. Every hand-off is
   * awaited before anything is reported; if one fails the whole chunk is reported as not done
   * (`BridgeDeliveryError`), even if others went through: a replay duplicates, never skips.
   */
  async process(batch: PartitionBatch): Promise<ChunkOutcome> {
    const last = batch.messages[batch.messages.length - 1];
    if (!last) return { resolvedOffset: null, published: 0, accepted: 0, deadLettered: 0 };
    const { events, valid, unsequenced, deadLetters } = classify(batch);
    const failed = (what: string, cause: unknown) =>
      new BridgeDeliveryError(`could not ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, {
        topic: batch.topic,
        partition: batch.partition,
        firstOffset: batch.messages[0]?.offset ?? null,
      }, { cause });

    const started = performance.now();
    let accepted: AcceptOutcome | undefined;
    if (unsequenced.length > 0) {
      try {
        accepted = await this.acceptor.accept(unsequenced.map((u) => u.location));
      } catch (error) {
        throw failed('store locations without a sequence in PostgreSQL', error);
      }
      for (const { index, reason } of accepted.refused) deadLetters.push(deadLetter(batch, (unsequenced[index] as (typeof unsequenced)[number]).message, reason));
      deadLetters.sort((a, b) => (BigInt(a.source.offset) < BigInt(b.source.offset) ? -1 : 1));
    }
    const [published, deadLettered] = await Promise.allSettled([
      events.length > 0 ? this.publisher.publish(events) : Promise.resolve(),
      deadLetters.length > 0 ? this.deadLetters.send(deadLetters) : Promise.resolve(),
    ]);
    if (published.status === 'rejected') throw failed('publish to Redis', published.reason);
    if (deadLettered.status === 'rejected') throw failed('send to the dead-letter topic', deadLettered.reason);
    if (events.length > 0) this.observer.published?.(events.length, performance.now() - started, valid);
    if (accepted) this.observer.accepted?.(accepted);
    if (deadLetters.length > 0) this.observer.deadLettered?.(deadLetters);
    const acceptedCount = accepted ? accepted.stored + accepted.replayed : 0;
    return { resolvedOffset: last.offset, published: events.length, accepted: acceptedCount, deadLettered: deadLetters.length };
  }

  /**
   * Processes a whole fetched batch chunk by chunk, retrying a failed chunk with jittered
   * exponential backoff until it goes through or the caller says to stop (consumer stopping,
   * partition revoked or seeked). Only one chunk is held in memory per partition and nothing after
   * a failed chunk is attempted, so per-partition order holds and a Redis outage costs no memory
   * and no busy loop. `resolve` is called, in order, with each chunk's last offset once it is done.
   */
  async run(batch: PartitionBatch, control: RunControl): Promise<RunOutcome> {
    const chunkSize = Math.max(1, control.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const outcome: RunOutcome = { resolvedOffset: null, published: 0, accepted: 0, deadLettered: 0, attempts: 0, completed: false };
    for (let start = 0; start < batch.messages.length; start += chunkSize) {
      const chunk: PartitionBatch = { ...batch, messages: batch.messages.slice(start, start + chunkSize) };
      const backoff = new Backoff(control.backoff);
      let result: ChunkOutcome | undefined;
      while (!result) {
        if (!control.isActive()) return outcome;
        outcome.attempts += 1;
        try {
          result = await this.process(chunk);
        } catch (error) {
          this.observer.failed?.(error, backoff.attempt + 1);
          await control.wait(backoff.next());
          // Keep the group membership (and learn about a rebalance) while Redis is away.
          await control.heartbeat?.();
        }
      }
      outcome.published += result.published;
      outcome.accepted += result.accepted;
      outcome.deadLettered += result.deadLettered;
      if (result.resolvedOffset !== null) {
        outcome.resolvedOffset = result.resolvedOffset;
        // Outside the try: a failing commit is the consumer's business (rebalance, coordinator
        // moved), not a reason to publish the chunk again.
        await control.resolve(result.resolvedOffset);
      }
    }
    outcome.completed = true;
    return outcome;
  }
}

export const DEFAULT_CHUNK_SIZE = 500;

export interface RunControl {
  /** Marks every message up to and including `offset` as done (kafkajs `resolveOffset` + commit). */
  resolve(offset: string): void | Promise<void>;
  /** False once the chunk must be abandoned unresolved (stopping, revoked, stale). */
  isActive(): boolean;
  /** Waits `ms` (or less, if stopping); injected so tests need no timers. */
  wait(ms: number): Promise<void>;
  heartbeat?(): Promise<void>;
  chunkSize?: number;
  backoff?: BackoffOptions;
}

export interface RunOutcome extends ChunkOutcome {
  attempts: number;
  /** False if the run was abandoned (`isActive` turned false) before the last chunk was done. */
  completed: boolean;
}
