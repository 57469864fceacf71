import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { waitForHealth } from '../../tools/localStack';
import { graphql } from '../support/client';
import { startEntry, type ChildEntry } from '../support/processes';
import { freePort } from '../support/redisServer';
import { followWithResume, type ResumingSubscriber } from '../support/resumingSubscriber';
import { createTestDatabase, type TestDatabase } from '../support/testDatabase';
import { mintJwt } from '../support/tokens';

/**
 * Replicas fail, nothing is lost or repeated: 2 gateways, 2 bridges and 2 location subgraphs run as
 * separate processes on the real services, with dashboards on both gateways, while locations
 * stream. One bridge is killed (-9), then one gateway (its dashboards resume on the other), then
 * the outbox relay's leader; every dashboard ends with every location exactly once, in order.
 */
let database: TestDatabase;
const processes = new Map<string, ChildEntry>();
const run = randomUUID().slice(0, 8);
const ports: Record<string, number> = {};

function baseEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    DATABASE_URL: database.ownerUrl,
    APP_DATABASE_URL: database.appUrl,
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_PREFIX: `replicas:${run}:`,
    KAFKA_BROKERS: process.env.TEST_KAFKA_BROKERS,
    KAFKA_TOPIC: `locations-${run}`,
    KAFKA_CLIENT_ID: `replicas-${run}`,
    KAFKA_CONSUMER_GROUP: `bridge-${run}`,
    KAFKA_MAX_WAIT_MS: '50',
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '500',
    AWS_REGION: 'us-east-1',
    COGNITO_ENDPOINT: process.env.TEST_COGNITO_ENDPOINT,
    COGNITO_USER_POOL_ID: process.env.TEST_COGNITO_USER_POOL_ID,
    COGNITO_CLIENT_ID: process.env.TEST_COGNITO_CLIENT_ID,
    COGNITO_ISSUER: process.env.TEST_COGNITO_ISSUER,
    CALLER_SIGNING_SECRET: `replicas-${randomUUID()}-${randomUUID()}`,
    ADMIN_EMAIL: `admin-${run}@fleet.test`,
    ADMIN_PASSWORD: 'replicas-admin-password',
    STOP_WHEN_STDIN_CLOSES: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}

function start(name: string, entry: string, env: NodeJS.ProcessEnv): ChildEntry {
  const started = startEntry(entry, env, { stdin: 'pipe' });
  processes.set(name, started);
  return started;
}

const gatewayUrl = (n: 1 | 2) => `http://127.0.0.1:${ports[`gateway${n}`]}/graphql`;

beforeAll(async () => {
  database = await createTestDatabase();
  for (const name of ['auth', 'tenant', 'location1', 'location2', 'bridge1', 'bridge2', 'gateway1', 'gateway2', 'metrics1', 'metrics2']) ports[name] = await freePort();
  const env = baseEnv();
  const url = (name: string) => `http://127.0.0.1:${ports[name]}/graphql`;
  start('auth', 'subgraphs/auth/main.ts', { ...env, AUTH_PORT: String(ports.auth) });
  start('tenant', 'subgraphs/tenant/main.ts', { ...env, TENANT_PORT: String(ports.tenant) });
  // location1 starts first and becomes the outbox relay's leader; location2 stands by. (Their
  // info lines say who publishes.)
  const leader = start('location1', 'subgraphs/location/main.ts', { ...env, LOG_LEVEL: 'info', LOCATION_PORT: String(ports.location1) });
  await leader.waitForLine(/outbox relay is the publisher/, 60_000);
  start('location2', 'subgraphs/location/main.ts', { ...env, LOG_LEVEL: 'info', LOCATION_PORT: String(ports.location2) });
  // Bridges join the group together (a member joining mid-stream stalls the mock broker).
  for (const n of [1, 2]) start(`bridge${n}`, 'bridge/main.ts', { ...env, BRIDGE_PORT: String(ports[`bridge${n}`]) });
  // gateway1 uses the standby location subgraph, gateway2 the leader: killing gateway2 and then
  // the leader leaves gateway1 with a location subgraph that stays up.
  for (const [n, location] of [[1, 'location2'], [2, 'location1']] as const) {
    start(`gateway${n}`, 'gateway/main.ts', {
      ...env,
      GATEWAY_PORT: String(ports[`gateway${n}`]),
      GATEWAY_METRICS_PORT: String(ports[`metrics${n}`]),
      AUTH_URL: url('auth'),
      TENANT_URL: url('tenant'),
      LOCATION_URL: url(location),
    });
  }
  const deadline = Date.now() + 90_000;
  const health = (name: string, path = '/health') => `http://127.0.0.1:${ports[name]}${path}`;
  await Promise.all(
    ['auth', 'tenant', 'location1', 'location2', 'bridge1', 'bridge2', 'gateway1', 'gateway2'].map((name) =>
      waitForHealth(health(name), deadline, processes.get(name)?.exited).catch((error: Error) => {
        throw new Error(`${name}: ${error.message}\n${processes.get(name)?.lines.slice(-20).join('\n')}`);
      }),
    ),
  );
}, 150_000);

afterAll(async () => {
  await Promise.all([...processes.values()].map((p) => (p.child.exitCode === null && p.child.signalCode === null ? p.signal('SIGTERM') : p.exited)));
  await database?.drop();
}, 60_000);

/** A tenant, a member of it with a token the emulator's public key signs, and three devices. */
async function fleet(): Promise<{ tenantId: string; token: string; devices: string[] }> {
  const tenantId = randomUUID();
  const user = { id: randomUUID(), email: `replica-member-${run}@fleet.test` };
  const owner = new pg.Client({ connectionString: database.ownerUrl });
  await owner.connect();
  await owner.query('INSERT INTO tenants (id, name) VALUES ($1, $2)', [tenantId, `Replicas ${run}`]);
  await owner.query('INSERT INTO users (id, email, role) VALUES ($1, $2, $3)', [user.id, user.email, 'MEMBER']);
  await owner.query('INSERT INTO tenant_members (user_id, tenant_id) VALUES ($1, $2)', [user.id, tenantId]);
  await owner.end();
  const now = Math.floor(Date.now() / 1000);
  const token = mintJwt({ sub: user.id, email: user.email, aud: process.env.TEST_COGNITO_CLIENT_ID, iss: process.env.TEST_COGNITO_ISSUER, token_use: 'id', iat: now, exp: now + 3600 });
  const devices: string[] = [];
  for (let i = 0; i < 3; i++) {
    const response = await graphql(gatewayUrl(1), 'mutation($n: String!) { registerDevice(name: $n) { id } }', { n: `replica-truck-${i}` }, { token });
    if (!response.data) throw new Error(JSON.stringify(response.errors));
    devices.push(response.data.registerDevice.id);
  }
  return { tenantId, token, devices };
}

/** What a dashboard lacks or has twice, per device (for a failure message). */
function describeGaps(received: ResumingSubscriber['received'], accepted: Map<string, number>): string {
  return [...accepted]
    .map(([deviceId, count]) => {
      const got = received.filter((r) => r.deviceId === deviceId).map((r) => r.sequence);
      const missing = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !got.includes(n));
      return `${deviceId.slice(0, 8)} has ${got.length}/${count}, missing [${missing.slice(0, 20).join(',')}${missing.length > 20 ? ',…' : ''}]`;
    })
    .join('; ');
}

/** Every (device, sequence) exactly once and, per device, in increasing order. */
function expectExactlyOnceInOrder(received: ResumingSubscriber['received'], accepted: Map<string, number>) {
  for (const [deviceId, count] of accepted) {
    const sequences = received.filter((r) => r.deviceId === deviceId).map((r) => r.sequence);
    expect(sequences).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  }
}

test('a bridge, a gateway and the relay leader die while locations stream: every dashboard gets every location once, in order', async () => {
  const { tenantId, token, devices } = await fleet();
  const urls = [1, 2].map((n) => gatewayUrl(n as 1 | 2).replace(/^http/, 'ws'));
  // Dashboards on both gateways; each falls over to the other replica with `after`. They start
  // from sequence 0, so none depends on being subscribed before the first location is accepted.
  const from = devices.map((deviceId) => ({ deviceId, sequence: 0 }));
  const dashboards = [
    followWithResume({ urls: [urls[0] as string, urls[1] as string], token, tenantId, from }),
    followWithResume({ urls: [urls[1] as string, urls[0] as string], token, tenantId, from }),
    followWithResume({ urls: [urls[1] as string, urls[0] as string], token, tenantId, deviceId: devices[0], from: from.slice(0, 1) }),
  ];
  const accepted = new Map<string, number>(devices.map((d) => [d, 0]));
  let streaming = true;
  const producer = (async () => {
    while (streaming) {
      const response = await graphql(gatewayUrl(1), 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { sequence device { id } } }', {
        i: devices.map((deviceId, k) => ({ deviceId, latitude: k, longitude: 0 })),
      }, { token });
      if (!response.data) throw new Error(JSON.stringify(response.errors));
      for (const location of response.data.recordLocations) accepted.set(location.device.id, location.sequence);
    }
  })();
  const total = () => [...accepted.values()].reduce((a, b) => a + b, 0);
  const caughtUp = (subscriber: ResumingSubscriber, only?: string) =>
    subscriber.until((received) => {
      const wanted = only ? (accepted.get(only) ?? 0) : total();
      return received.filter((r) => !only || r.deviceId === only).length >= wanted;
    }, 120_000);
  const flowing = async () => {
    const before = total();
    await dashboards[0]!.until((received) => received.length >= before + 30, 60_000);
  };

  await flowing();
  await processes.get('bridge1')!.signal('SIGKILL');
  await flowing(); // the group rebalanced onto bridge2
  await processes.get('gateway2')!.signal('SIGKILL');
  await flowing();
  await processes.get('location1')!.signal('SIGKILL'); // the relay's leader
  await processes.get('location2')!.waitForLine(/outbox relay is the publisher/, 60_000);
  await flowing();
  streaming = false;
  await producer;

  await Promise.all([caughtUp(dashboards[0]!), caughtUp(dashboards[1]!), caughtUp(dashboards[2]!, devices[0])]).catch((error: Error) => {
    const report = dashboards
      .map((d, n) => `dashboard ${n}: ${describeGaps(d.received, n === 2 ? new Map([[devices[0] as string, accepted.get(devices[0] as string) ?? 0]]) : accepted)}; closes ${d.closes.join(',')}`)
      .join('\n');
    throw new Error(`${error.message}\n${report}`);
  });
  for (const subscriber of dashboards) await subscriber.stop();
  expectExactlyOnceInOrder(dashboards[0]!.received, accepted);
  expectExactlyOnceInOrder(dashboards[1]!.received, accepted);
  expectExactlyOnceInOrder(dashboards[2]!.received, new Map([[devices[0] as string, accepted.get(devices[0] as string) ?? 0]]));
  // The dashboards on gateway2 really did move over.
  expect(dashboards[1]!.reconnects).toBeGreaterThanOrEqual(1);
  expect(dashboards[2]!.reconnects).toBeGreaterThanOrEqual(1);
}, 300_000);
