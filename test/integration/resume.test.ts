import { once } from 'node:events';
import { CallerDirectory, TokenVerifier } from '../../gateway/identity';
import { startGateway } from '../../gateway/server';
import { createLogger } from '../../lib/logger';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Collected, type Dashboard } from '../support/subscriber';

/**
 * Resume without a gap: a client that reconnects passes the last sequence it saw per device and
 * gets every location it missed (from the history, in order), then the live stream, with nothing
 * twice at the seam; how far back a resume reaches is bounded. And a gateway that stops drains:
 * what it already resolved reaches its clients, then it closes their sockets with 1012.
 */
const RESUME_LIMIT = 25;
let stack: TestStack;
let admin: Session;
const dashboards: Dashboard[] = [];

const FEED = `subscription($t: ID!, $d: ID, $after: [DeviceSequenceInput!]) {
  locationUpdated(tenantId: $t, deviceId: $d, after: $after) { id sequence device { id name tenant { id } } }
}`;

beforeAll(async () => {
  stack = await startTestStack({ live: { historyLimit: RESUME_LIMIT } });
  admin = await adminSession(stack);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

async function fleet(devices = 1) {
  const tenantId = await createTenant(stack, admin);
  const member = await memberOf(stack, admin, tenantId);
  const deviceIds: string[] = [];
  for (let i = 0; i < devices; i++) deviceIds.push(await registerDevice(stack, member));
  return { tenantId, member, deviceIds };
}

async function watch(wsUrl: string, token: string, variables: Record<string, unknown>, registry = stack.gateway.subscriptions): Promise<{ dashboard: Dashboard; live: Collected }> {
  const before = registry.size;
  const dashboard = connectDashboard(wsUrl, token);
  dashboards.push(dashboard);
  const live = dashboard.subscribe(FEED, variables);
  const timeout = AbortSignal.timeout(20_000);
  while (registry.size <= before && !live.error) await once(registry, 'changed', { signal: timeout });
  return { dashboard, live };
}

async function record(member: Session, inputs: Array<{ deviceId: string }>, url = stack.gatewayUrl): Promise<Array<{ id: string; sequence: number }>> {
  const response = await graphql(url, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id sequence } }', {
    i: inputs.map((input, i) => ({ ...input, latitude: i % 80, longitude: 0 })),
  }, { token: member.token });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocations;
}

const seen = (results: Array<{ data?: any }>) => results.map((r) => `${r.data.locationUpdated.device.id}:${r.data.locationUpdated.sequence}`);
const lastPositions = (results: Array<{ data?: any }>) => {
  const last = new Map<string, number>();
  for (const r of results) last.set(r.data.locationUpdated.device.id, r.data.locationUpdated.sequence);
  return [...last].map(([deviceId, sequence]) => ({ deviceId, sequence }));
};

test('a reconnect with `after` gets what it missed, then the live stream, while locations keep coming: each exactly once, in order', async () => {
  const { tenantId, member, deviceIds } = await fleet(2);
  const all: string[] = [];
  const recordRound = async () => {
    const accepted = await record(member, deviceIds.map((deviceId) => ({ deviceId })));
    accepted.forEach((l, i) => all.push(`${deviceIds[i]}:${l.sequence}`));
  };
  const first = await watch(stack.wsUrl, member.token, { t: tenantId });
  for (let i = 0; i < 3; i++) await recordRound();
  const before = await first.live.waitFor(6);
  await first.dashboard.dispose(); // the network drops

  for (let i = 0; i < 4; i++) await recordRound(); // missed while away
  // Locations keep being accepted while the client reconnects: the seam is under load.
  let recording = true;
  const streaming = (async () => {
    while (recording) await recordRound();
  })();
  const second = await watch(stack.wsUrl, member.token, { t: tenantId, after: lastPositions(before) });
  await second.live.until((results) => results.length >= 8 + 2);
  recording = false;
  await streaming;
  const after = await second.live.waitFor(all.length - before.length, 30_000);
  // Per device, in order, each exactly once across the two connections.
  const received = [...seen(before), ...seen(after)];
  expect([...received].sort()).toEqual([...all].sort());
  for (const deviceId of deviceIds) {
    const sequences = received.filter((key) => key.startsWith(deviceId)).map((key) => Number(key.split(':')[1]));
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
  }
});

test(`a resume reaches back at most ${RESUME_LIMIT} locations per device: the newest, so the seam has no gap`, async () => {
  const { tenantId, member, deviceIds } = await fleet(1);
  const deviceId = deviceIds[0] as string;
  await record(member, Array.from({ length: 40 }, () => ({ deviceId })));
  const { live } = await watch(stack.wsUrl, member.token, { t: tenantId, d: deviceId, after: [{ deviceId, sequence: 5 }] });
  const replayed = await live.waitFor(RESUME_LIMIT);
  expect(replayed.map((r) => r.data.locationUpdated.sequence)).toEqual(Array.from({ length: RESUME_LIMIT }, (_, i) => 40 - RESUME_LIMIT + 1 + i));
  const [next] = await record(member, [{ deviceId }]);
  expect((await live.waitFor(RESUME_LIMIT + 1)).at(-1)?.data.locationUpdated.sequence).toBe(next?.sequence);
});

test("`after` is checked, and naming another tenant's device resumes nothing of it", async () => {
  const mine = await fleet(1);
  const theirs = await fleet(1);
  await record(theirs.member, [{ deviceId: theirs.deviceIds[0] as string }]);
  const { live } = await watch(stack.wsUrl, mine.member.token, { t: mine.tenantId, after: [{ deviceId: theirs.deviceIds[0], sequence: 0 }] });
  const [own] = await record(mine.member, [{ deviceId: mine.deviceIds[0] as string }]);
  expect((await live.waitFor(1)).map((r) => r.data.locationUpdated.id)).toEqual([own?.id]);
  expect(JSON.stringify(live.results)).not.toContain(theirs.tenantId);

  const refused = connectDashboard(stack.wsUrl, mine.member.token);
  dashboards.push(refused);
  for (const after of [[{ deviceId: mine.deviceIds[0], sequence: -1 }], Array.from({ length: 1001 }, (_, i) => ({ deviceId: `d${i}`, sequence: 0 }))]) {
    const attempt = refused.subscribe(FEED, { t: mine.tenantId, after });
    const error = (await attempt.ended()) as Array<{ extensions: { code: string } }>;
    expect(error.map((e) => e.extensions.code)).toEqual(['BAD_USER_INPUT']);
  }
});

test('a stopping gateway hands over what it resolved, closes with 1012, and the client resumes on another replica', async () => {
  const { tenantId, member, deviceIds } = await fleet(1);
  const deviceId = deviceIds[0] as string;
  const verifier = new TokenVerifier({ region: stack.cognito.region, userPoolId: stack.cognito.userPoolId, clientId: stack.cognito.clientId, issuer: stack.cognito.issuer });
  const replica = await startGateway({
    port: 0,
    supergraph: { load: () => stack.supergraphSdl, files: () => [] },
    callerSigningSecret: stack.callerSigningSecret,
    identity: new CallerDirectory(verifier, stack.db),
    db: stack.db,
    redisUrl: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: stack.redisPrefix,
    limits: { perConnection: 10, perTenant: 100, queueCapacity: 1000 },
    logger: createLogger('test', 'silent'),
  });
  const other = await watch(stack.wsUrl, member.token, { t: tenantId, d: deviceId });
  const doomed = await watch(replica.url.replace(/^http/, 'ws'), member.token, { t: tenantId, d: deviceId }, replica.subscriptions);
  const sent = await record(member, Array.from({ length: 30 }, () => ({ deviceId })));
  await other.live.until((results) => results.length >= 30); // resolved everywhere
  await replica.stop();
  expect((await doomed.dashboard.closed).code).toBe(1012);
  // Everything it had taken in was handed over before the close frame.
  const got = doomed.live.results.map((r) => r.data.locationUpdated.sequence);
  expect(got).toEqual(sent.map((l) => l.sequence));

  const resumed = await watch(stack.wsUrl, member.token, { t: tenantId, d: deviceId, after: [{ deviceId, sequence: got.at(-1) ?? 0 }] });
  sent.push(...(await record(member, [{ deviceId }])));
  const rest = await resumed.live.waitFor(sent.length - got.length);
  expect([...got, ...rest.map((r) => r.data.locationUpdated.sequence)]).toEqual(sent.map((l) => l.sequence));
});
