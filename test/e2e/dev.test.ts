import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { graphql } from '../support/client';
import { processesMarked, startEntry, waitUntilGone, type ChildEntry } from '../support/processes';
import { freePort } from '../support/redisServer';
import { connectDashboard } from '../support/subscriber';

/**
 * `npm run dev` as a newcomer runs it: tools/dev.ts starts the stand-ins (its own Kafka mock and
 * cognito-local), migrates a database, and starts the five processes as children. The first test
 * drives the platform over HTTP and graphql-ws, then sends SIGINT; the others stop the runner the
 * other ways (a process that fails to start, the runner killed outright). Every run marks its
 * environment, which every process it starts inherits, so that no survivor escapes the check, not
 * even one re-parented to init.
 */
const SERVER = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const database = `fleet_e2e_${randomBytes(5).toString('hex')}`;
const cognitoDir = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-cognito-'));
const admin = { email: 'e2e-admin@fleet.test', password: 'e2e-admin-password' };
/** Processes stop within SHUTDOWN_TIMEOUT_MS (10 s); the runner waits for them. */
const STOP_BOUND_MS = 15_000;

interface DevRun {
  dev: ChildEntry;
  marker: string;
  ports: Record<string, number>;
}
const runs: DevRun[] = [];

async function startDev(extraEnv: NodeJS.ProcessEnv = {}): Promise<DevRun> {
  const ports: Record<string, number> = {};
  for (const name of ['GATEWAY_PORT', 'AUTH_PORT', 'TENANT_PORT', 'LOCATION_PORT', 'BRIDGE_PORT', 'GATEWAY_METRICS_PORT', 'COGNITO_LOCAL_PORT']) ports[name] = await freePort();
  const dbUrl = new URL(SERVER);
  dbUrl.pathname = `/${database}`;
  const marker = `FLEET_E2E_RUN=${randomBytes(6).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    AUTH_URL: `http://127.0.0.1:${ports.AUTH_PORT}/graphql`,
    TENANT_URL: `http://127.0.0.1:${ports.TENANT_PORT}/graphql`,
    LOCATION_URL: `http://127.0.0.1:${ports.LOCATION_PORT}/graphql`,
    GATEWAY_HOST: '127.0.0.1',
    DATABASE_URL: dbUrl.toString(),
    REDIS_PREFIX: `e2e:${database}:`,
    COGNITO_LOCAL_DATA_DIR: cognitoDir,
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    KAFKA_MAX_WAIT_MS: '50',
    LOG_LEVEL: 'warn',
    // Should this test process die, the runner (and so everything) stops: it holds the runner's stdin.
    STOP_WHEN_STDIN_CLOSES: 'true',
    [marker.split('=')[0] as string]: marker.split('=')[1],
    ...extraEnv,
  };
  for (const name of ['KAFKA_BROKERS', 'COGNITO_USER_POOL_ID', 'COGNITO_CLIENT_ID', 'COGNITO_ENDPOINT', 'COGNITO_ISSUER', 'NODE_ENV', 'HOST']) delete env[name];
  const run = { dev: startEntry('tools/dev.ts', env, { stdin: 'pipe' }), marker, ports };
  runs.push(run);
  return run;
}

// Whatever a test did or failed to do, nothing it started is left: kill the runner, whose
// children stop on their own; anything still there after their bound fails the test.
afterEach(async () => {
  const leftovers: number[] = [];
  for (const { dev, marker } of runs.splice(0)) {
    dev.child.kill('SIGKILL');
    await dev.exited;
    const left = await waitUntilGone(processesMarked(marker), STOP_BOUND_MS);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    leftovers.push(...left);
  }
  expect(leftovers).toEqual([]);
}, 2 * STOP_BOUND_MS);

afterAll(async () => {
  rmSync(cognitoDir, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  await client.end();
});

test('npm run dev serves the platform within 60 s, and SIGINT stops every process it started', async () => {
  const started = Date.now();
  const { dev, marker, ports } = await startDev();
  await dev.waitForLine(/^\[dev\] ready/, 60_000);
  expect(Date.now() - started).toBeLessThan(60_000);

  for (const port of [ports.GATEWAY_PORT, ports.AUTH_PORT, ports.TENANT_PORT, ports.LOCATION_PORT, ports.BRIDGE_PORT, ports.GATEWAY_METRICS_PORT]) {
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  }
  const gateway = `http://127.0.0.1:${ports.GATEWAY_PORT}/graphql`;
  const login = await graphql(gateway, 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { idToken user { id } } }', { e: admin.email, p: admin.password });
  const token = login.data?.login.idToken as string;
  const me = await graphql(gateway, '{ me { id email role } }', {}, { token });
  expect(me.data?.me).toEqual({ id: login.data?.login.user.id, email: admin.email, role: 'ADMIN' });

  // The live path across real processes: mutation → outbox → Kafka → bridge → Redis → gateway → socket.
  const tenant = await graphql(gateway, 'mutation { createTenant(name: "E2E") { id } }', {}, { token });
  const tenantId = tenant.data?.createTenant.id as string;
  await graphql(gateway, 'mutation { register(email: "e2e-member@fleet.test", password: "e2e-member-pw") { id } }');
  // No mail server: `npm run dev` prints the code the pool "emailed".
  const code = /: (\S+)$/.exec(await dev.waitForLine(/^\[dev\] verification code for e2e-member@fleet\.test: \S+$/))?.[1] as string;
  const confirmed = await graphql(gateway, 'mutation($c: String!) { confirmRegistration(email: "e2e-member@fleet.test", code: $c) { id } }', { c: code });
  expect(confirmed.errors).toBeUndefined();
  await graphql(gateway, 'mutation($t: ID!) { addTenantMember(tenantId: $t, email: "e2e-member@fleet.test") { id } }', { t: tenantId }, { token });
  const member = (await graphql(gateway, 'mutation { login(email: "e2e-member@fleet.test", password: "e2e-member-pw") { idToken } }')).data?.login.idToken as string;
  const deviceId = (await graphql(gateway, 'mutation { registerDevice(name: "e2e truck") { id } }', {}, { token: member })).data?.registerDevice.id as string;
  const dashboard = connectDashboard(gateway.replace('http', 'ws'), member);
  const live = dashboard.subscribe('subscription($t: ID!) { locationUpdated(tenantId: $t) { latitude device { name tenant { name } } } }', { t: tenantId });
  // The socket is subscribed once the gateway answered; a location recorded until then is caught up.
  let delivered: Array<{ data?: any }> = [];
  for (let attempt = 0; delivered.length === 0 && attempt < 20; attempt += 1) {
    await graphql(gateway, 'mutation($d: ID!) { recordLocation(input: { deviceId: $d, latitude: 45.5, longitude: 7 }) { id } }', { d: deviceId }, { token: member });
    delivered = await live.waitFor(1, 3_000).catch(() => []);
  }
  expect(delivered[0]?.data.locationUpdated).toEqual({ latitude: 45.5, device: { name: 'e2e truck', tenant: { name: 'E2E' } } });
  await dashboard.dispose();

  // Five processes, the Kafka mock, cognito-local.
  expect(processesMarked(marker).filter((pid) => pid !== dev.pid).length).toBeGreaterThanOrEqual(7);
  const exit = await dev.signal('SIGINT');
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  // The runner waited for them: nothing of this run is left the moment it is gone.
  expect(processesMarked(marker)).toEqual([]);
}, 120_000);

test('a process that fails to start stops the stack, and the runner exits only once every process is gone', async () => {
  // The gateway's port is taken: it fails at listen, seconds after the others started.
  const blocker: Server = createServer();
  const port = await freePort();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
  try {
    const { dev, marker } = await startDev({ GATEWAY_PORT: String(port) });
    const exit = await dev.exited;
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 1, signal: null });
    expect(dev.lines.join('\n')).toMatch(/\[dev\] stopping: gateway exited with 1/);
    expect(processesMarked(marker)).toEqual([]);
  } finally {
    blocker.close();
  }
}, 120_000);

test('the runner killed outright (SIGKILL): its children notice and stop on their own', async () => {
  const { dev, marker } = await startDev();
  for (const name of ['auth', 'tenant', 'location', 'bridge', 'gateway']) await dev.waitForLine(new RegExp(`^\\[dev\\] started ${name} `), 60_000);
  const children = processesMarked(marker).filter((pid) => pid !== dev.pid);
  expect(children.length).toBeGreaterThanOrEqual(7); // five processes, the Kafka mock, cognito-local
  await dev.signal('SIGKILL');
  expect(await waitUntilGone(children, STOP_BOUND_MS)).toEqual([]);
}, 120_000);
