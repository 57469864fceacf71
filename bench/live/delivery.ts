import type { BenchContext } from '../context';
import { monotonicMs, sleep } from '../stats';
import { startWorker, type Worker } from '../workers';
import type { DeviceRange } from './events';
import type { PublisherInput, PublisherResult } from './publisher';
import type { DeviceTally, SubscribersInput, SubscribersReport } from './subscribers';

/**
 * The runner's side of the live rows: subscriber processes, the publisher process, the gateway's
 * own count of open subscriptions, and the exactly-once check of what arrived.
 */
export interface SubscriberProcesses {
  workers: Worker[];
  /** Says go to every process at once; resolves when each has opened its sockets. */
  open(): Promise<Array<{ startedAt: number; openedAt: number; errors: number; firstError: string | null; closes: Record<string, number> }>>;
  /** Resolves with the last arrival time once every process has `perWorker[i]` deliveries, or null after `timeoutMs`. */
  delivered(perWorker: number[], timeoutMs: number): Promise<number | null>;
  reset(): Promise<void>;
  report(): Promise<SubscribersReport>;
  stop(): Promise<void>;
}

export async function startSubscribers(ctx: BenchContext, name: string, inputs: SubscribersInput[]): Promise<SubscriberProcesses> {
  const workers = inputs.map((input, i) => startWorker('bench/live/subscribers.ts', input, { name: `${name}:${i + 1}`, log: ctx.workerLog }));
  const stop = async () => {
    await Promise.all(
      workers.map(async (w) => {
        w.send({ type: 'close' });
        await w.next('closed', 15_000).catch(() => undefined);
        await w.stop();
      }),
    );
  };
  try {
    await Promise.all(workers.map((w) => w.next('ready', 30_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    workers,
    open: async () => {
      for (const w of workers) w.send({ type: 'go' });
      return Promise.all(workers.map((w) => w.next<any>('opened', 120_000)));
    },
    delivered: async (perWorker, timeoutMs) => {
      const done = workers.map((w, i) => {
        w.send({ type: 'expect', deliveries: perWorker[i] });
        return w.next<{ type: string; at: number }>('complete', timeoutMs).then((m) => m.at);
      });
      const settled = await Promise.allSettled(done);
      if (settled.some((s) => s.status === 'rejected')) return null;
      return Math.max(...settled.map((s) => (s as PromiseFulfilledResult<number>).value));
    },
    reset: async () => {
      await Promise.all(
        workers.map((w) => {
          w.send({ type: 'reset' });
          return w.next('reset', 10_000);
        }),
      );
    },
    report: async () => {
      const reports = await Promise.all(
        workers.map((w) => {
          w.send({ type: 'report' });
          return w.next<SubscribersReport & { [key: string]: unknown }>('report', 30_000);
        }),
      );
      const merged: SubscribersReport = { type: 'report', deliveries: 0, tallies: {}, arrivals: [], errors: 0, firstError: null, closes: {}, failed: [] };
      for (const r of reports) {
        merged.deliveries += r.deliveries;
        Object.assign(merged.tallies, r.tallies);
        for (const a of r.arrivals) merged.arrivals.push(a);
        merged.errors += r.errors;
        merged.firstError ??= r.firstError;
        for (const [code, n] of Object.entries(r.closes)) merged.closes[code] = (merged.closes[code] ?? 0) + n;
        for (const id of r.failed) merged.failed.push(id);
      }
      return merged;
    },
    stop,
  };
}

/** Publishes `ranges` from the publisher process at `ratePerS`; resolves once it is ready to go. */
export async function preparePublisher(ctx: BenchContext, tenantId: string, ranges: DeviceRange[], baseMs: number, ratePerS: number): Promise<{ pid: number; go(): Promise<PublisherResult>; stop(): Promise<void> }> {
  const input: PublisherInput = { redisUrl: ctx.platform.redisUrl, prefix: ctx.platform.redisPrefix, tenantId, ranges, baseMs, ratePerS };
  const worker = startWorker('bench/live/publisher.ts', input, { name: 'publisher', log: ctx.workerLog });
  try {
    await worker.next('ready', 60_000);
  } catch (error) {
    await worker.stop();
    throw error;
  }
  return {
    pid: worker.pid,
    go: async () => {
      worker.send({ type: 'go' });
      const events = ranges.reduce((n, r) => n + r.to - r.from + 1, 0);
      return worker.next<PublisherResult & { [key: string]: unknown }>('published', 30_000 + (ratePerS > 0 ? (events * 2000) / ratePerS : 0));
    },
    stop: () => worker.stop(),
  };
}

/** A gauge of the gateway's /metrics (state without an event: read, not awaited). */
export async function gatewayGauge(ctx: BenchContext, name: string): Promise<number> {
  const text = await (await fetch(ctx.platform.metricsUrl)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/** Polls a gauge until it reaches `atLeast`; returns the time it took, or null after `timeoutMs`. */
export async function gaugeReaches(ctx: BenchContext, name: string, atLeast: number, timeoutMs: number, stepMs = 50): Promise<number | null> {
  const started = monotonicMs();
  while (monotonicMs() - started < timeoutMs) {
    if ((await gatewayGauge(ctx, name)) >= atLeast) return monotonicMs() - started;
    await sleep(stepMs);
  }
  return null;
}

export interface ExactlyOnce {
  expected: number;
  delivered: number;
  missing: number;
  /** Arrivals not above the device's previous one: duplicates or out of order. */
  notAbove: number;
  gaps: number;
  /** Deliveries of devices or subscriptions that should have had none. */
  unexpected: number;
  violations: number;
}

/** Compares what each subscription received with the device ranges it should have received, exactly once, in order. */
export function checkExactlyOnce(report: SubscribersReport, expected: Map<string, DeviceRange[]>): ExactlyOnce {
  const verdict: ExactlyOnce = { expected: 0, delivered: 0, missing: 0, notAbove: 0, gaps: 0, unexpected: 0, violations: 0 };
  for (const [id, ranges] of expected) {
    const devices: Record<string, DeviceTally> = report.tallies[id] ?? {};
    for (const range of ranges) {
      const want = range.to - range.from + 1;
      const got = devices[range.deviceId];
      verdict.expected += want;
      if (!got || got.count === 0) {
        verdict.missing += want;
        continue;
      }
      verdict.delivered += got.count;
      verdict.notAbove += got.notAbove;
      verdict.gaps += got.gaps;
      // `count` counts only arrivals above the previous one, so fewer than `want` means some never came.
      verdict.missing += Math.max(0, want - got.count);
      if (got.first < range.from || got.last > range.to) verdict.unexpected += 1;
    }
    for (const deviceId of Object.keys(devices)) if (!ranges.some((r) => r.deviceId === deviceId) && devices[deviceId]!.count > 0) verdict.unexpected += devices[deviceId]!.count;
  }
  for (const id of Object.keys(report.tallies)) {
    if (!expected.has(id)) verdict.unexpected += Object.values(report.tallies[id]!).reduce((n, t) => n + t.count, 0);
  }
  verdict.violations = verdict.missing + verdict.notAbove + verdict.gaps + verdict.unexpected;
  return verdict;
}

export function describeExactlyOnce(v: ExactlyOnce): string {
  return `${v.delivered}/${v.expected} delivered; missing ${v.missing}, duplicate or out of order ${v.notAbove}, gaps ${v.gaps}, unexpected ${v.unexpected}`;
}
