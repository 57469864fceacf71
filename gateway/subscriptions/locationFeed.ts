import { RedisPubSub } from 'graphql-redis-subscriptions';
import { Redis } from 'ioredis';
import { locationChannel, membershipChannel, type LocationChannelScope } from '../../lib/channels';
import { locationEventSchema, type LocationEvent } from '../../lib/locationEvent';
import type { Logger } from '../../lib/logger';

/**
 * The gateway's side of Redis: subscribes to a channel only while some local subscriber follows
 * it (reference-counted), so a gateway hears only the tenants and devices its clients watch.
 *
 * Publisher and subscriber are separate connections because a Redis connection in subscribe mode
 * can issue no other command. When the subscriber connection comes back after Redis was lost
 * (ioredis re-subscribes by itself), `onResubscribed` listeners run so subscriptions can catch up
 * on what was published while nobody listened.
 */
export class LocationFeed {
  private readonly pubsub: RedisPubSub;
  private readonly subscriber: Redis;
  private readonly publisher: Redis;
  private readonly channels = new Map<string, { subscription: Promise<number>; listeners: Set<(event: LocationEvent) => void> }>();
  private readonly resubscribedListeners = new Set<() => void>();
  private readonly membershipListeners = new Set<(userId: string) => void>();
  private readonly membershipSubscription: Promise<number>;
  private lostConnection = false;
  private closing = false;

  constructor(
    redisUrl: string,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.publisher = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.pubsub = new RedisPubSub({ subscriber: this.subscriber, publisher: this.publisher });
    this.subscriber.on('close', () => {
      if (!this.lostConnection && !this.closing) logger.warn('lost the Redis subscriber connection');
      this.lostConnection = true;
    });
    this.subscriber.on('ready', () => {
      if (!this.lostConnection) return;
      this.lostConnection = false;
      logger.info({ channels: this.channels.size }, 'Redis subscriber connection is back; catching up');
      for (const listener of this.resubscribedListeners) listener();
    });
    this.subscriber.on('error', (error) => logger.debug({ err: error }, 'Redis subscriber error'));
    this.membershipSubscription = this.pubsub.subscribe(membershipChannel(prefix), (message: unknown) => {
      const userId = (message as { userId?: unknown } | null)?.userId;
      if (typeof userId === 'string') for (const listener of this.membershipListeners) listener(userId);
    });
    this.membershipSubscription.catch((error: unknown) => logger.error({ err: error }, 'could not follow membership changes'));
    this.publisher.on('error', (error) => logger.debug({ err: error }, 'Redis publisher error'));
  }

  get ready(): boolean {
    return this.subscriber.status === 'ready';
  }

  /** Resolves once membership changes are being received (Redis confirmed the subscription). */
  async followingMemberships(): Promise<void> {
    await this.membershipSubscription;
  }

  onMembershipChanged(listener: (userId: string) => void): () => void {
    this.membershipListeners.add(listener);
    return () => this.membershipListeners.delete(listener);
  }

  onResubscribed(listener: () => void): () => void {
    this.resubscribedListeners.add(listener);
    return () => this.resubscribedListeners.delete(listener);
  }

  /** Starts delivering the scope's events to `listener`; resolves once Redis confirmed the subscription. */
  async follow(scope: LocationChannelScope, listener: (event: LocationEvent) => void): Promise<() => void> {
    const channel = locationChannel(this.prefix, scope);
    let entry = this.channels.get(channel);
    if (!entry) {
      const listeners = new Set<(event: LocationEvent) => void>();
      const subscription = this.pubsub.subscribe(channel, (message: unknown) => this.dispatch(channel, listeners, message));
      entry = { subscription, listeners };
      this.channels.set(channel, entry);
    }
    entry.listeners.add(listener);
    const current = entry;
    try {
      await current.subscription;
    } catch (error) {
      current.listeners.delete(listener);
      if (current.listeners.size === 0) this.channels.delete(channel);
      throw error;
    }
    return () => {
      current.listeners.delete(listener);
      if (current.listeners.size === 0 && this.channels.get(channel) === current) {
        this.channels.delete(channel);
        void current.subscription.then((id) => this.pubsub.unsubscribe(id)).catch(() => undefined);
      }
    };
  }

  private dispatch(channel: string, listeners: Set<(event: LocationEvent) => void>, message: unknown): void {
    // The bridge validated it already; checking again costs little and keeps a bad publisher out.
    const parsed = locationEventSchema.safeParse(message);
    if (!parsed.success) {
      this.logger.warn({ channel }, 'ignored a message that is not a location event');
      return;
    }
    for (const listener of listeners) listener(parsed.data);
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.pubsub.close().catch(() => undefined);
    this.channels.clear();
  }
}
