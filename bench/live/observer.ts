import { Redis } from 'ioredis';
import { locationChannel } from '../../lib/channels';
import { monotonicMs } from '../stats';

/**
 * An extra Redis subscriber on a tenant's location channel, as the gateway subscribes: it
 * timestamps when each location was published (by the bridge, or by the bench's publisher), so a
 * subscriber's arrival time minus this one is the gateway's hand-over lag.
 */
export interface ChannelObserver {
  /** `${deviceId}:${seq}` → first arrival (CLOCK_MONOTONIC ms). */
  readonly published: Map<string, number>;
  /** Messages for a location already seen (Kafka replays republished by the bridge). */
  readonly repeats: number;
  /** Resolves once `count` distinct locations were seen, false after `timeoutMs`. */
  reached(count: number, timeoutMs: number): Promise<boolean>;
  close(): void;
}

export const locationKey = (deviceId: string, seq: number) => `${deviceId}:${seq}`;

export async function observeTenant(redisUrl: string, prefix: string, tenantId: string): Promise<ChannelObserver> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const published = new Map<string, number>();
  let repeats = 0;
  const waiting: Array<{ count: number; resolve: (ok: boolean) => void }> = [];
  redis.on('message', (_channel: string, message: string) => {
    const at = monotonicMs();
    let event: { deviceId?: string; seq?: number };
    try {
      event = JSON.parse(message) as typeof event;
    } catch {
      return;
    }
    if (!event.deviceId || typeof event.seq !== 'number') return;
    const key = locationKey(event.deviceId, event.seq);
    if (published.has(key)) repeats++;
    else published.set(key, at);
    for (let i = waiting.length - 1; i >= 0; i--) {
      if (published.size >= waiting[i]!.count) waiting.splice(i, 1)[0]!.resolve(true);
    }
  });
  await redis.subscribe(locationChannel(prefix, { tenantId }));
  return {
    published,
    get repeats() {
      return repeats;
    },
    reached: (count, timeoutMs) =>
      new Promise<boolean>((resolve) => {
        if (published.size >= count) return resolve(true);
        const entry = { count, resolve };
        waiting.push(entry);
        setTimeout(() => {
          const at = waiting.indexOf(entry);
          if (at >= 0) {
            waiting.splice(at, 1);
            resolve(false);
          }
        }, timeoutMs).unref();
      }),
    close: () => redis.disconnect(),
  };
}
