import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sharingFetch, sharingIdentity, type SharedFetchStats } from '../../gateway/subgraphFetcher';

/**
 * In-flight sharing of identical subgraph fetches: one request for identical fetches of one
 * caller, never one for two callers. The subgraph is a local HTTP server that answers slowly (so
 * the fetches overlap) with who asked and how many requests it has seen.
 */
let server: http.Server;
let url: string;
let requests = 0;
let release: () => void = () => undefined;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests += 1;
    const seen = requests;
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const answer = () => res.end(JSON.stringify({ data: { seen, caller: req.headers['x-fleet-caller'], mark: req.headers['x-fleet-share-as'] ?? null } }));
      const previous = release;
      release = () => {
        previous();
        answer();
      };
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const alice = { userId: 'alice', email: 'a@x', role: 'MEMBER' as const, tenantId: 'tenant-a' };
const bob = { userId: 'bob', email: 'b@x', role: 'MEMBER' as const, tenantId: 'tenant-b' };
const aliceElsewhere = { ...alice, tenantId: 'tenant-b' };

async function fetchAs(fetcher: ReturnType<typeof sharingFetch>, identity: string | null, body: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-fleet-caller': `signed-for-${identity}` };
  if (identity !== null) headers['x-fleet-share-as'] = identity;
  const response = await (fetcher as unknown as (u: string, i: RequestInit) => Promise<Response>)(url, { method: 'POST', headers, body });
  return (await response.json()) as { data: { seen: number; caller: string; mark: string | null } };
}

/**
 * Every fetch is issued (and has joined one in flight, or not) when `work` is built; once the
 * server holds `expected` requests it answers them. A fetch that should have shared but did not
 * is never answered, and the test fails on its timeout.
 */
async function overlapping<T>(work: Array<Promise<T>>, expected: number): Promise<T[]> {
  while (requests < expected) await once(server, 'request');
  // The request handler registers its answer once the body is read.
  await new Promise((resolve) => setImmediate(resolve));
  release();
  return Promise.all(work);
}

beforeEach(() => {
  requests = 0;
  release = () => undefined;
});

test('identical fetches of one caller in flight together are sent once, each reader gets its own copy', async () => {
  const stats: SharedFetchStats = { shared: 0 };
  const fetcher = sharingFetch(5_000, stats);
  const body = JSON.stringify({ query: '{ devices { id } }' });
  const answers = await overlapping([1, 2, 3].map(() => fetchAs(fetcher, sharingIdentity(alice), body)), 1);
  expect(requests).toBe(1);
  expect(stats.shared).toBe(2);
  expect(new Set(answers.map((a) => a.data.seen))).toEqual(new Set([1]));
  expect(answers[0]).not.toBe(answers[1]);
  expect(answers.map((a) => a.data.mark)).toEqual([null, null, null]);
});

test('two callers, or one user in two tenants, never share a fetch, even with identical bodies', async () => {
  const fetcher = sharingFetch(5_000, { shared: 0 });
  const body = JSON.stringify({ query: '{ devices { id } }' });
  const [a, b, c] = await overlapping([fetchAs(fetcher, sharingIdentity(alice), body), fetchAs(fetcher, sharingIdentity(bob), body), fetchAs(fetcher, sharingIdentity(aliceElsewhere), body)], 3);
  expect(requests).toBe(3);
  expect([a?.data.caller, b?.data.caller, c?.data.caller]).toEqual([`signed-for-${sharingIdentity(alice)}`, `signed-for-${sharingIdentity(bob)}`, `signed-for-${sharingIdentity(aliceElsewhere)}`]);
});

test('a fetch not marked for sharing (a mutation) is always sent, and the mark never reaches the subgraph', async () => {
  const fetcher = sharingFetch(5_000, { shared: 0 });
  const body = JSON.stringify({ query: 'mutation { registerDevice(name: "x") { id } }' });
  await overlapping([fetchAs(fetcher, null, body), fetchAs(fetcher, null, body)], 2);
  expect(requests).toBe(2);
});
