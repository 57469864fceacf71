import { monotonicMs } from '../stats';
import { runWorker } from '../workerProcess';

/**
 * A device app reporting one location at a time (`recordLocation` through the gateway), 10-30 ms
 * apart, jittered so the sends do not phase-lock with the Kafka consumer's poll loop. Reports each
 * accepted location's sequence with the time its mutation returned.
 */
export interface PacedRecordInput {
  url: string;
  token: string;
  deviceId: string;
  count: number;
}

export interface PacedRecordResult {
  type: 'result';
  accepted: Array<[number, number]>;
  errors: number;
  firstError: string | null;
}

const MUTATION = 'mutation($i: LocationInput!) { recordLocation(input: $i) { sequence } }';

runWorker<PacedRecordInput>(async (input, runner) => {
  await new Promise<void>((resolve) => {
    runner.on('go', () => resolve());
    runner.send({ type: 'ready' });
  });
  const accepted: Array<[number, number]> = [];
  let errors = 0;
  let firstError: string | null = null;
  for (let i = 0; i < input.count; i++) {
    const response = await fetch(input.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${input.token}` },
      body: JSON.stringify({ query: MUTATION, variables: { i: { deviceId: input.deviceId, latitude: 48 + i / 1000, longitude: 11 + i / 1000 } } }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { data?: { recordLocation?: { sequence: number } }; errors?: unknown[] };
    const returned = monotonicMs();
    if (body.data?.recordLocation) accepted.push([body.data.recordLocation.sequence, returned]);
    else {
      errors++;
      firstError ??= JSON.stringify(body).slice(0, 300);
    }
    await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
  }
  const result: PacedRecordResult = { type: 'result', accepted, errors, firstError };
  runner.send(result as unknown as { type: string });
});
