import {
  Kafka,
  Partitioners,
  logLevel,
  type Consumer,
  type EachBatchPayload,
  type LogEntry,
  type Producer,
  type RetryOptions,
} from 'kafkajs';
import type { Logger } from '../lib/logger';
import type { BackoffOptions } from '../lib/backoff';
import type { DeadLetter, DeadLetterSink, LocationBridge } from './locationBridge';
import type { BridgeMetrics } from './metrics';

/**
 * The kafkajs adapter: a consumer group member that feeds `LocationBridge` one partition batch at
 * a time, and the producer behind the dead-letter topic. Everything Kafka-specific lives here.
 *
 * Offsets: `eachBatchAutoResolve: false`, so kafkajs never marks a message done by itself; the
 * only `resolveOffset` calls are the bridge's, made after Redis (and the DLQ) acknowledged. kafkajs'
 * auto-commit then commits just those resolved offsets (after each batch, on error, on rebalance),
 * so a committed offset never passes an unpublished message.
 */

export interface KafkaConsumerOptions {
  brokers: string[];
  clientId: string;
  groupId: string;
  topic: string;
  /** How long the broker may hold an empty fetch. Low values busy-poll; see ENVIRONMENT.md. */
  maxWaitMs: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Start a group that has no committed offset at the earliest message (default true: never skip). */
  fromBeginning?: boolean;
  /** Messages per Redis pipeline / commit step within a fetched batch. */
  chunkSize?: number;
  /** Backoff between retries of a chunk Redis or the DLQ refused. */
  deliveryBackoff?: BackoffOptions;
  /** kafkajs retry settings for the client (connect, fetch, commit, produce). */
  retry?: RetryOptions;
}

export function deadLetterTopic(topic: string): string {
  return `${topic}.dlq`;
}

/** Routes kafkajs' own log lines to pino. */
function kafkaLogCreator(logger: Logger) {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, ...extra } = log;
      const child = { kafkajs: namespace, ...extra };
      if (level === logLevel.ERROR) logger.error(child, message);
      else if (level === logLevel.WARN) logger.warn(child, message);
      else if (level === logLevel.INFO) logger.info(child, message);
      else logger.debug(child, message);
    };
}

/**
 * Retries that never give up: transient broker errors back off up to `maxRetryTime`; when kafkajs
 * exhausts them anyway (a long outage), the consumer crashes with a retriable error and
 * `restartOnFailure` restarts it (re-joining the group from the committed offsets).
 */
export const DEFAULT_KAFKA_RETRY: RetryOptions = {
  initialRetryTime: 300,
  maxRetryTime: 10_000,
  retries: 20,
  restartOnFailure: async () => true,
};

export class KafkaDeadLetterSink implements DeadLetterSink {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
  ) {}

  async send(letters: readonly DeadLetter[]): Promise<void> {
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: letters.map((letter) => ({
        key: letter.key,
        value: letter.value,
        headers: {
          ...letter.headers,
          'x-dlq-reason': letter.reason,
          'x-dlq-source': `${letter.source.topic}/${letter.source.partition}/${letter.source.offset}`,
        },
      })),
    });
  }
}

export class KafkaLocationConsumer {
  readonly consumer: Consumer;
  readonly producer: Producer;
  readonly deadLetters: KafkaDeadLetterSink;
  private member = false;
  /** Last time the coordinator answered us (join or heartbeat), for `isGroupMember`. */
  private lastContact = 0;
  private stopping = false;
  private readonly wakeSleepers = new Set<() => void>();
  private readonly removeListeners: (() => void)[] = [];
  /** Resolves at the first GROUP_JOIN. */
  readonly joined: Promise<void>;
  private onJoined!: () => void;

  private readonly metrics: BridgeMetrics | undefined;
  private readonly onFatal: (error: Error) => void;

  constructor(
    private readonly options: KafkaConsumerOptions,
    private readonly logger: Logger,
    hooks: { metrics?: BridgeMetrics; onFatal?: (error: Error) => void } = {},
  ) {
    this.metrics = hooks.metrics;
    this.onFatal = hooks.onFatal ?? (() => {});
    if (options.heartbeatIntervalMs >= options.sessionTimeoutMs) {
      throw new RangeError('heartbeatIntervalMs must be lower than sessionTimeoutMs (about a third of it)');
    }
    if (options.maxWaitMs < 1) throw new RangeError('maxWaitMs must be at least 1 (0 busy-polls the broker)');
    const retry = { ...DEFAULT_KAFKA_RETRY, ...options.retry };
    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: options.brokers,
      retry,
      logLevel: logLevel.INFO,
      logCreator: kafkaLogCreator(logger.child({ component: 'kafkajs' })),
    });
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      // How long the coordinator waits for every member to re-join in a rebalance (kafkajs default
      // 60 s). A member busy retrying Redis learns of the rebalance at its next heartbeat and
      // re-joins at once, so the group need not wait long for a member that is gone.
      rebalanceTimeout: Math.max(options.sessionTimeoutMs, 10_000),
      maxWaitTimeInMs: options.maxWaitMs,
      retry,
    });
    this.producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: true,
      retry,
    });
    this.deadLetters = new KafkaDeadLetterSink(this.producer, deadLetterTopic(options.topic));
    this.joined = new Promise((resolve) => (this.onJoined = resolve));

    const { GROUP_JOIN, HEARTBEAT, CRASH, DISCONNECT, STOP, REBALANCING } = this.consumer.events;
    this.removeListeners.push(
      this.consumer.on(HEARTBEAT, () => (this.lastContact = Date.now())),
      this.consumer.on(GROUP_JOIN, (event) => {
        this.member = true;
        this.lastContact = Date.now();
        this.metrics?.resetLag();
        const assignment = event.payload.memberAssignment;
        this.logger.info({ groupId: options.groupId, assignment, durationMs: event.payload.duration }, 'joined consumer group');
        this.onJoined();
      }),
      this.consumer.on(REBALANCING, () => this.logger.info({ groupId: options.groupId }, 'consumer group rebalancing')),
      this.consumer.on(CRASH, (event) => {
        this.member = false;
        const { error, restart } = event.payload;
        if (restart) {
          this.logger.warn({ err: error }, 'kafka consumer crashed; kafkajs restarts it');
        } else if (!this.stopping) {
          this.logger.error({ err: error }, 'kafka consumer crashed and will not restart');
          this.onFatal(error);
        }
      }),
      this.consumer.on(DISCONNECT, () => (this.member = false)),
      this.consumer.on(STOP, () => (this.member = false)),
    );
  }

  /**
   * True once joined, until kafkajs crashes, stops or disconnects — or until the coordinator has
   * not answered a heartbeat for a whole session timeout. kafkajs keeps retrying a lost broker for
   * a long time before it crashes (about 16 s with the defaults here); by the session timeout the
   * broker has evicted this member anyway, so /health turns 503 then.
   */
  isGroupMember(): boolean {
    return this.member && Date.now() - this.lastContact < this.options.sessionTimeoutMs;
  }

  /** Connects, joins the group and starts feeding `bridge`; resolves once running (see `joined`). */
  async start(bridge: LocationBridge): Promise<void> {
    await this.producer.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.options.topic], fromBeginning: this.options.fromBeginning ?? true });
    await this.consumer.run({
      eachBatchAutoResolve: false,
      autoCommit: true,
      // Commits also happen after every batch; within a long batch, at most every second.
      autoCommitInterval: 1_000,
      eachBatch: (payload) => this.handleBatch(bridge, payload),
    });
  }

  private async handleBatch(bridge: LocationBridge, payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale } = payload;
    const { topic, partition, highWatermark } = batch;
    const first = batch.messages[0];
    if (first) this.metrics?.setLag(topic, partition, highWatermark, first.offset);
    await bridge.run(batch, {
      isActive: () => !this.stopping && isRunning() && !isStale(),
      resolve: async (offset) => {
        resolveOffset(offset);
        this.metrics?.setLag(topic, partition, highWatermark, (BigInt(offset) + 1n).toString());
        await commitOffsetsIfNecessary();
      },
      heartbeat,
      wait: (ms) => this.waitBeating(ms, heartbeat),
      chunkSize: this.options.chunkSize,
      backoff: this.options.deliveryBackoff,
    });
  }

  /**
   * Waits before a retry, heartbeating at the heartbeat interval meanwhile so a backoff longer
   * than the session timeout cannot cost the group membership.
   */
  private async waitBeating(ms: number, heartbeat: () => Promise<void>): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      await this.sleep(Math.min(this.options.heartbeatIntervalMs, until - Date.now()));
      if (this.stopping || Date.now() >= until) return;
      await heartbeat();
    }
  }

  /** A sleep that `stop()` cuts short, so a bridge waiting for Redis stops at once. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeSleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeSleepers.add(done);
    });
  }

  /**
   * Leaves the group (so the partitions move to another replica at once instead of after the
   * session timeout) once the batch in hand is abandoned or done; only resolved offsets are
   * committed on the way out.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of [...this.wakeSleepers]) wake();
    try {
      await this.consumer.disconnect();
    } finally {
      for (const remove of this.removeListeners) remove();
      this.member = false;
      await this.producer.disconnect().catch((error: unknown) => this.logger.warn({ err: error }, 'DLQ producer disconnect failed'));
    }
  }
}
