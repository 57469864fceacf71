import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { monotonicMs } from '../stats';
import { runWorker } from '../workerProcess';
import { resetTally, tallyArrival, type DeviceTally } from './tally';

export type { DeviceTally };

/**
 * Subscriber process: graphql-ws sockets as dashboards open them (the token in connection_init),
 * each with its subscriptions. For every subscription and device it counts what arrives and checks
 * the order as it goes (a sequence not above the last one is a duplicate or reordering, one more
 * than a step above is a gap); for the subscriptions named in `timed` it also keeps each arrival's
 * time (CLOCK_MONOTONIC, comparable with the runner's Redis observer).
 *
 * Messages: ready → go → opened; expect {deliveries} → complete; reset; report → report; close → closed.
 */
export interface SubscriptionSpec {
  id: string;
  query: string;
  variables: Record<string, unknown>;
}

export interface SubscribersInput {
  wsUrl: string;
  sockets: Array<{ token: string; subscriptions: SubscriptionSpec[] }>;
  /** 'together': every socket at once (a reconnect storm); otherwise a few at a time. */
  connect: 'together' | 'inTurn';
  timed: string[];
}

export interface SubscribersReport {
  type: 'report';
  deliveries: number;
  /** subscription id → device id → tally. */
  tallies: Record<string, Record<string, DeviceTally>>;
  /** [deviceId, sequence, arrival ms] of the timed subscriptions. */
  arrivals: Array<[string, number, number]>;
  errors: number;
  firstError: string | null;
  /** Close code (and reason) → how many sockets closed so without being asked to. */
  closes: Record<string, number>;
  /** Subscriptions that ended with an error or whose socket closed: they cannot receive anything. */
  failed: string[];
}

const CONNECTING_AT_ONCE = 20;

runWorker<SubscribersInput>(async (input, runner) => {
  const clients: Client[] = [];
  const tallies = new Map<string, Map<string, DeviceTally>>();
  const timed = new Set(input.timed);
  let arrivals: Array<[string, number, number]> = [];
  let deliveries = 0;
  let expected = Number.POSITIVE_INFINITY;
  let errors = 0;
  let firstError: string | null = null;
  const closes: Record<string, number> = {};
  const failed = new Set<string>();
  let closing = false;
  const error = (message: string) => {
    errors++;
    firstError ??= message.slice(0, 300);
  };
  const describe = (e: unknown) => {
    if (e instanceof Error) return e.message;
    const close = e as { code?: number; reason?: string } | null;
    if (close && typeof close.code === 'number') return `closed ${close.code}${close.reason ? ` (${close.reason})` : ''}`;
    return JSON.stringify(e);
  };

  const onResult = (spec: SubscriptionSpec, result: { data?: any; errors?: unknown[] }) => {
    const at = monotonicMs();
    if (result.errors?.length) error(JSON.stringify(result.errors));
    const location = result.data?.locationUpdated as { sequence?: number; device?: { id?: string } } | undefined;
    const deviceId = location?.device?.id;
    const seq = location?.sequence;
    if (!deviceId || typeof seq !== 'number') return;
    deliveries++;
    let devices = tallies.get(spec.id);
    if (!devices) tallies.set(spec.id, (devices = new Map()));
    tallyArrival(devices, deviceId, seq);
    if (timed.has(spec.id)) arrivals.push([deviceId, seq, at]);
    if (deliveries === expected) runner.send({ type: 'complete', at });
  };

  const open = (socket: SubscribersInput['sockets'][number]) =>
    new Promise<void>((resolve) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      const client = createClient({
        url: input.wsUrl,
        webSocketImpl: WebSocket,
        lazy: false,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${socket.token}` },
        on: {
          connected: settle,
          closed: (event) => {
            if (!closing) {
              const close = event as { code?: number; reason?: string };
              const code = `${close.code ?? 'unknown'}${close.reason ? ` ${close.reason}` : ''}`;
              closes[code] = (closes[code] ?? 0) + 1;
              for (const spec of socket.subscriptions) failed.add(spec.id);
            }
            settle();
          },
        },
        onNonLazyError: (e) => {
          // A close before the acknowledgement is counted as a close; anything else is an error.
          if (e instanceof Error) error(`socket: ${describe(e)}`);
          settle();
        },
      });
      clients.push(client);
      for (const spec of socket.subscriptions) {
        client.subscribe(
          { query: spec.query, variables: spec.variables },
          {
            next: (result) => onResult(spec, result as { data?: any; errors?: unknown[] }),
            error: (e) => {
              // A socket that closed ends its subscriptions with the close event: counted once, as a close.
              if (!closing && !failed.has(spec.id)) error(`subscription ${spec.id}: ${describe(e)}`);
              failed.add(spec.id);
            },
            complete: () => undefined,
          },
        );
      }
    });

  runner.on('expect', (message) => {
    expected = Number(message.deliveries);
    if (deliveries >= expected) runner.send({ type: 'complete', at: monotonicMs() });
  });
  runner.on('reset', () => {
    for (const devices of tallies.values()) for (const tally of devices.values()) resetTally(tally);
    deliveries = 0;
    expected = Number.POSITIVE_INFINITY;
    arrivals = [];
    runner.send({ type: 'reset' });
  });
  runner.on('report', () => {
    const report: SubscribersReport = {
      type: 'report',
      deliveries,
      tallies: Object.fromEntries([...tallies].map(([id, devices]) => [id, Object.fromEntries(devices)])),
      arrivals,
      errors,
      firstError,
      closes,
      failed: [...failed],
    };
    runner.send(report as unknown as { type: string });
  });
  runner.on('close', async () => {
    closing = true;
    await Promise.all(clients.map((client) => client.dispose()));
    runner.send({ type: 'closed' });
  });

  await new Promise<void>((resolve) => {
    runner.on('go', () => resolve());
    runner.send({ type: 'ready' });
  });
  const startedAt = monotonicMs();
  if (input.connect === 'together') {
    await Promise.all(input.sockets.map(open));
  } else {
    for (let i = 0; i < input.sockets.length; i += CONNECTING_AT_ONCE) await Promise.all(input.sockets.slice(i, i + CONNECTING_AT_ONCE).map(open));
  }
  runner.send({ type: 'opened', startedAt, openedAt: monotonicMs(), errors, firstError, closes });
});
