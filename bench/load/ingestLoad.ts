import { monotonicMs } from '../stats';
import { runWorker } from '../workerProcess';

/**
 * Ingest load generator process: `clients` device apps, each sending `recordLocations` batches of
 * `batchSize` for its own devices one after another (closed loop) for `durationS`. Every accepted
 * location is reported as [deviceId, sequence, time the batch returned], so the runner can follow
 * each one to Redis and check the sequences.
 */
export interface IngestLoadInput {
  url: string;
  clients: Array<{ token: string; deviceIds: string[] }>;
  batchSize: number;
  durationS: number;
}

export interface IngestLoadResult {
  type: 'result';
  batches: number;
  accepted: Array<[string, number, number]>;
  errors: number;
  firstError: string | null;
  startedAt: number;
  endedAt: number;
  /** Batch round-trip times, ms. */
  batchMs: number[];
}

const MUTATION = 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { sequence } }';

runWorker<IngestLoadInput>(async (input, runner) => {
  const target = new URL(input.url);
  if (target.hostname !== '127.0.0.1' && target.hostname !== 'localhost') throw new Error('load targets must be on this machine');
  await new Promise<void>((resolve) => {
    runner.on('go', () => resolve());
    runner.send({ type: 'ready' });
  });
  const accepted: Array<[string, number, number]> = [];
  const batchMs: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let batches = 0;
  const startedAt = monotonicMs();
  const until = startedAt + input.durationS * 1000;

  await Promise.all(
    input.clients.map(async (client, c) => {
      for (let round = 0; monotonicMs() < until; round++) {
        // The batch covers the client's devices in turn, so each device gets several per batch, in order.
        const inputs = Array.from({ length: input.batchSize }, (_, k) => ({
          deviceId: client.deviceIds[k % client.deviceIds.length]!,
          latitude: ((round * 7 + k + c) % 170) - 85,
          longitude: ((round * 11 + k) % 350) - 175,
          speed: 12.5,
          heading: (k * 3) % 360,
        }));
        const sent = monotonicMs();
        try {
          const response = await fetch(input.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${client.token}` },
            body: JSON.stringify({ query: MUTATION, variables: { i: inputs } }),
            signal: AbortSignal.timeout(30_000),
          });
          const body = (await response.json()) as { data?: { recordLocations?: Array<{ sequence: number }> }; errors?: unknown[] };
          const returned = monotonicMs();
          const locations = body.data?.recordLocations;
          if (response.status !== 200 || body.errors || !locations) {
            errors++;
            firstError ??= `${response.status} ${JSON.stringify(body).slice(0, 300)}`;
            continue;
          }
          batches++;
          batchMs.push(returned - sent);
          locations.forEach((location, k) => accepted.push([inputs[k]!.deviceId, location.sequence, returned]));
        } catch (error) {
          errors++;
          firstError ??= String(error);
        }
      }
    }),
  );
  const result: IngestLoadResult = { type: 'result', batches, accepted, errors, firstError, startedAt, endedAt: monotonicMs(), batchMs };
  runner.send(result as unknown as { type: string });
});
