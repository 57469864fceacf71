import { Redis } from 'ioredis';
import { locationChannels } from '../../lib/channels';
import { monotonicMs } from '../stats';
import { runWorker } from '../workerProcess';
import { interleaved, type DeviceRange } from './events';

/**
 * Publisher process: publishes the events of `ranges` to their Redis channels exactly as the
 * bridge does (JSON.stringify(event) to the tenant channel and the device channel, one pipeline per
 * tick), paced at `ratePerS` (0: as fast as Redis takes them). Bounded by the event count.
 */
export interface PublisherInput {
  redisUrl: string;
  prefix: string;
  tenantId: string;
  ranges: DeviceRange[];
  baseMs: number;
  ratePerS: number;
}

export interface PublisherResult {
  type: 'published';
  published: number;
  startedAt: number;
  endedAt: number;
}

const TICK_MS = 5;

runWorker<PublisherInput>(async (input, runner) => {
  const redis = new Redis(input.redisUrl, { maxRetriesPerRequest: 1 });
  await redis.ping();
  const events = [...interleaved(input.tenantId, input.ranges, input.baseMs)].map((event) => ({ event, payload: JSON.stringify(event) }));
  await new Promise<void>((resolve) => {
    runner.on('go', () => resolve());
    runner.send({ type: 'ready', events: events.length });
  });
  const startedAt = monotonicMs();
  let sent = 0;
  while (sent < events.length) {
    const due = input.ratePerS > 0 ? Math.min(events.length, Math.floor(((monotonicMs() - startedAt) * input.ratePerS) / 1000) + 1) : events.length;
    if (due > sent) {
      const pipeline = redis.pipeline();
      for (; sent < due; sent++) {
        const { event, payload } = events[sent]!;
        for (const channel of locationChannels(input.prefix, event)) pipeline.publish(channel, payload);
      }
      await pipeline.exec();
    }
    if (sent < events.length) await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  const result: PublisherResult = { type: 'published', published: sent, startedAt, endedAt: monotonicMs() };
  redis.disconnect();
  runner.send(result as unknown as { type: string });
});
