import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AcceptOutcome, BridgeObserver, DeadLetter, RawMessage } from './locationBridge';
import { ID_CONFLICT, UNKNOWN_DEVICE } from './postgresAcceptor';

/**
 * The bridge's Prometheus metrics, registered on the registry it is given (one per bridge, so
 * several bridges in one test process do not collide).
 */

/**
 * `parseLocationMessage`'s and the acceptor's reasons folded into a bounded label set. The reasons
 * are free text (they name the field, the expected key or the device), so matching is on their
 * fixed leading words; an unknown wording lands in `other` rather than growing the label set.
 */
export function deadLetterReasonClass(reason: string): 'empty' | 'not_json' | 'invalid_field' | 'wrong_key' | 'unknown_device' | 'id_conflict' | 'other' {
  if (reason.startsWith('empty message')) return 'empty';
  if (reason.startsWith('value is not JSON')) return 'not_json';
  if (reason.startsWith('invalid field')) return 'invalid_field';
  if (reason.startsWith('message key')) return 'wrong_key';
  if (reason.startsWith(UNKNOWN_DEVICE)) return 'unknown_device';
  if (reason.startsWith(ID_CONFLICT)) return 'id_conflict';
  return 'other';
}

export class BridgeMetrics implements BridgeObserver {
  readonly messagesPublished: Counter;
  readonly messagesDeadLettered: Counter<'reason'>;
  readonly locationsAccepted: Counter<'result'>;
  readonly deliveryFailures: Counter;
  readonly publishDuration: Histogram;
  readonly eventAge: Histogram;
  readonly consumerLag: Gauge<'topic' | 'partition'>;
  readonly groupMember: Gauge;
  readonly redisReady: Gauge;

  constructor(registry: Registry, probes: { isGroupMember(): boolean; isRedisReady(): boolean }) {
    const registers = [registry];
    this.messagesPublished = new Counter({
      name: 'bridge_messages_published_total',
      help: 'Location events published to Redis (each to its tenant and device channel).',
      registers,
    });
    this.messagesDeadLettered = new Counter({
      name: 'bridge_messages_dead_lettered_total',
      help: 'Invalid messages moved to the dead-letter topic, by reason class.',
      labelNames: ['reason'],
      registers,
    });
    this.locationsAccepted = new Counter({
      name: 'bridge_locations_accepted_total',
      help: 'Locations without a seq (other producers) stored in PostgreSQL (result="stored") or found already stored (result="replayed").',
      labelNames: ['result'],
      registers,
    });
    this.deliveryFailures = new Counter({
      name: 'bridge_delivery_failures_total',
      help: 'Chunks that could not be published, accepted or dead-lettered and were retried (Redis, PostgreSQL or DLQ unavailable).',
      registers,
    });
    this.publishDuration = new Histogram({
      name: 'bridge_publish_duration_seconds',
      help: 'Time to hand one chunk to Redis (one pipeline) and the DLQ, until both acknowledged.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers,
    });
    this.eventAge = new Histogram({
      name: 'bridge_event_age_seconds',
      help: 'From the Kafka record timestamp to its publication on Redis (Kafka + bridge latency).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.consumerLag = new Gauge({
      name: 'bridge_consumer_lag',
      help: "Messages behind the partition's high watermark after the last handled batch or chunk.",
      labelNames: ['topic', 'partition'],
      registers,
    });
    this.groupMember = new Gauge({
      name: 'bridge_consumer_group_member',
      help: '1 while the consumer is a member of its group, else 0.',
      registers,
      collect() {
        this.set(probes.isGroupMember() ? 1 : 0);
      },
    });
    this.redisReady = new Gauge({
      name: 'bridge_redis_ready',
      help: '1 while the Redis publisher connection is ready, else 0.',
      registers,
      collect() {
        this.set(probes.isRedisReady() ? 1 : 0);
      },
    });
  }

  published(count: number, durationMs: number, messages: readonly RawMessage[]): void {
    this.messagesPublished.inc(count);
    this.publishDuration.observe(durationMs / 1000);
    const now = Date.now();
    for (const message of messages) {
      const timestamp = Number(message.timestamp);
      if (Number.isFinite(timestamp) && timestamp > 0) this.eventAge.observe(Math.max(0, now - timestamp) / 1000);
    }
  }

  deadLettered(letters: readonly DeadLetter[]): void {
    for (const letter of letters) this.messagesDeadLettered.inc({ reason: deadLetterReasonClass(letter.reason) });
  }

  accepted(outcome: AcceptOutcome): void {
    if (outcome.stored > 0) this.locationsAccepted.inc({ result: 'stored' }, outcome.stored);
    if (outcome.replayed > 0) this.locationsAccepted.inc({ result: 'replayed' }, outcome.replayed);
  }

  failed(): void {
    this.deliveryFailures.inc();
  }

  /** Lag from the batch's high watermark: messages after `nextOffset - 1` not yet handled. */
  setLag(topic: string, partition: number, highWatermark: string, nextOffset: string): void {
    const lag = Number(BigInt(highWatermark) - BigInt(nextOffset));
    this.consumerLag.set({ topic, partition: String(partition) }, Math.max(0, lag));
  }

  /** After a rebalance, partitions this member no longer owns must not report a stale lag. */
  resetLag(): void {
    this.consumerLag.reset();
  }
}
