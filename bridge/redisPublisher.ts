import { Redis } from 'ioredis';
import { locationChannels } from '../lib/channels';
import type { LocationEvent } from '../lib/locationEvent';
import type { Logger } from '../lib/logger';
import type { LocationPublisher } from './locationBridge';

export interface RedisPublisherOptions {
  url: string;
  /** Channel prefix (`REDIS_PREFIX`); see `lib/channels.ts`. */
  prefix: string;
  /** A publish not acknowledged within this time fails (and the chunk is retried). Default 5000. */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect delay. Default 2000. */
  maxReconnectDelayMs?: number;
  connectionName?: string;
}

/**
 * Publishes location events to Redis pub/sub: each event, as `JSON.stringify(event)`, to both
 * channels of `locationChannels` (tenant-wide, then device). The gateway reads them with
 * graphql-redis-subscriptions' RedisPubSub, which JSON.parses the payload.
 *
 * One connection, one pipeline per call: Redis runs a connection's commands in the order sent, so
 * events reach subscribers in the order given. The connection fails fast instead of buffering:
 * no offline queue (a publish while disconnected rejects at once), in-flight commands are
 * rejected when the connection drops instead of being re-sent behind the caller's back
 * (`maxRetriesPerRequest: 0`, `autoResendUnfulfilledCommands: false`), and a hung connection is
 * caught by `commandTimeout`. The caller (LocationBridge) retries the whole chunk with backoff, so
 * nothing is held here while Redis is away.
 */
export class RedisLocationPublisher implements LocationPublisher {
  readonly redis: Redis;
  private readonly prefix: string;
  private lastErrorLog = 0;

  constructor(options: RedisPublisherOptions, logger: Logger) {
    if (!options.prefix) throw new RangeError('RedisLocationPublisher needs a non-empty channel prefix');
    this.prefix = options.prefix;
    const maxDelay = options.maxReconnectDelayMs ?? 2_000;
    this.redis = new Redis(options.url, {
      connectionName: options.connectionName ?? 'fleet-bridge',
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 5_000,
      // Never give up: jittered, capped reconnect delay.
      retryStrategy: (times) => Math.round(Math.min(maxDelay, 50 * 2 ** Math.min(times, 10)) * (0.5 + Math.random() / 2)),
    });
    this.redis.on('ready', () => logger.info('redis ready'));
    this.redis.on('error', (error: Error) => {
      // ioredis emits an error per failed reconnect attempt; one line every 5 s is enough.
      const now = Date.now();
      if (now - this.lastErrorLog >= 5_000) {
        this.lastErrorLog = now;
        logger.warn({ err: error }, 'redis connection error');
      }
    });
  }

  isReady(): boolean {
    return this.redis.status === 'ready';
  }

  async publish(events: readonly LocationEvent[]): Promise<void> {
    if (events.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const event of events) {
      const payload = JSON.stringify(event);
      for (const channel of locationChannels(this.prefix, event)) pipeline.publish(channel, payload);
    }
    const results = await pipeline.exec();
    if (!results) throw new Error('redis pipeline was discarded');
    for (const [error] of results) if (error) throw error;
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
