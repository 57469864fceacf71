import autocannon from 'autocannon';
import { runWorker } from '../workerProcess';

/**
 * Load generator process: autocannon (closed loop, `connections` requests in flight) POSTing one
 * GraphQL query for `durationS`. With several header sets, every request takes the next one in turn
 * across all connections, so requests in flight at the same moment belong to different callers.
 * A response that is not 200 or carries `errors` counts as an error, not as a request served.
 */
export interface QueryLoadInput {
  url: string;
  query: string;
  headerSets: Array<Record<string, string>>;
  connections: number;
  durationS: number;
}

export interface QueryLoadResult {
  type: 'result';
  /** Answered 200 without GraphQL errors. */
  served: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  latencyP50: number;
  latencyP99: number;
}

runWorker<QueryLoadInput>(async (input, runner) => {
  const target = new URL(input.url);
  if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost') throw new Error('load targets must be on this machine');
  const body = JSON.stringify({ query: input.query });
  const base = { 'content-type': 'application/json' };
  const headerSets = input.headerSets.map((headers) => ({ ...base, ...headers }));
  let turn = 0;
  let firstError: string | null = null;
  const rotate = headerSets.length > 1;
  // Loaded and waiting: the runner starts its CPU window, then says go.
  await new Promise<void>((resolve) => {
    runner.on('go', () => resolve());
    runner.send({ type: 'ready' });
  });
  const result = await autocannon({
    url: input.url,
    method: 'POST',
    connections: input.connections,
    duration: input.durationS,
    timeout: 10,
    body,
    headers: headerSets[0],
    requests: rotate ? [{ setupRequest: (request) => ({ ...request, headers: headerSets[turn++ % headerSets.length] }) }] : undefined,
    verifyBody: (raw) => {
      const text = String(raw ?? '');
      const ok = text.length > 0 && !text.includes('"errors"');
      if (!ok) firstError ??= text.slice(0, 300);
      return ok;
    },
  });
  const errors = result.non2xx + result.errors + result.timeouts + result.mismatches;
  const served = Math.max(0, result['2xx'] - result.mismatches);
  const message: QueryLoadResult = {
    type: 'result',
    served,
    errors,
    firstError: firstError ?? (errors ? `non-2xx ${result.non2xx}, socket errors ${result.errors}, timeouts ${result.timeouts}` : null),
    elapsedMs: result.duration * 1000,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
  };
  // The runner stops this process once it has the result.
  runner.send(message as unknown as { type: string });
});
