import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { graphql } from '../support/client';
import { freePort } from '../support/redisServer';
import { connectDashboard } from '../support/subscriber';

/**
 * `npm run dev` as a newcomer runs it: tools/dev.ts starts the stand-ins (its own Kafka mock and
 * cognito-local), migrates a database, and starts the five processes as children. The test drives
 * the platform over HTTP and graphql-ws, then sends SIGINT and checks that no process is left.
 */
const ROOT = path.resolve(__dirname, '..', '..');
const SERVER = process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const database = `fleet_e2e_${randomBytes(5).toString('hex')}`;
const cognitoDir = mkdtempSync(path.join(tmpdir(), 'fleet-e2e-cognito-'));
const ports: Record<string, number> = {};
const admin = { email: 'e2e-admin@fleet.test', password: 'e2e-admin-password' };

function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number) as [number, number]);
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of table) if (ppid === parent) {
      found.push(child);
      walk(child);
    }
  };
  walk(pid);
  return found;
}

/** Still running: present in the process table and not a zombie (an exited process nobody reaped yet). */
function running(pids: number[]): number[] {
  if (pids.length === 0) return [];
  try {
    const rows = execFileSync('ps', ['-o', 'pid=,stat=', '-p', pids.join(',')], { encoding: 'utf8' }).trim().split('\n');
    return rows.map((row) => row.trim().split(/\s+/)).filter(([, stat]) => !stat?.startsWith('Z')).map(([pid]) => Number(pid));
  } catch {
    return []; // ps exits 1 when none of the pids exists
  }
}

afterAll(async () => {
  rmSync(cognitoDir, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  await client.end();
});

test('npm run dev serves the platform within 60 s, and SIGINT stops every process it started', async () => {
  for (const name of ['GATEWAY_PORT', 'AUTH_PORT', 'TENANT_PORT', 'LOCATION_PORT', 'BRIDGE_PORT', 'COGNITO_LOCAL_PORT']) ports[name] = await freePort();
  const dbUrl = new URL(SERVER);
  dbUrl.pathname = `/${database}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    AUTH_URL: `http://127.0.0.1:${ports.AUTH_PORT}/graphql`,
    TENANT_URL: `http://127.0.0.1:${ports.TENANT_PORT}/graphql`,
    LOCATION_URL: `http://127.0.0.1:${ports.LOCATION_PORT}/graphql`,
    DATABASE_URL: dbUrl.toString(),
    REDIS_PREFIX: `e2e:${database}:`,
    COGNITO_LOCAL_DATA_DIR: cognitoDir,
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    KAFKA_MAX_WAIT_MS: '50',
    LOG_LEVEL: 'warn',
  };
  for (const name of ['KAFKA_BROKERS', 'COGNITO_USER_POOL_ID', 'COGNITO_CLIENT_ID', 'COGNITO_ENDPOINT', 'COGNITO_ISSUER']) delete env[name];

  const started = Date.now();
  const dev = spawn(process.execPath, [require.resolve('tsx/cli'), 'tools/dev.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const awaited: Array<{ pattern: RegExp; resolve: (match: RegExpExecArray) => void }> = [];
  /** The first output line matching `pattern`, printed already or to come. */
  const printed = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve) => {
      const match = output.map((line) => pattern.exec(line)).find((found) => found !== null);
      if (match) resolve(match);
      else awaited.push({ pattern, resolve });
    });
  const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    for (const stream of [dev.stdout, dev.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (line.startsWith('[dev] ready')) resolve();
        for (const waiting of [...awaited]) {
          const match = waiting.pattern.exec(line);
          if (match) {
            awaited.splice(awaited.indexOf(waiting), 1);
            waiting.resolve(match);
          }
        }
      });
    }
    void exited.then((code) => reject(new Error(`dev exited with ${code}:\n${output.slice(-30).join('\n')}`)));
  });
  await ready;
  expect(Date.now() - started).toBeLessThan(60_000);

  for (const port of [ports.GATEWAY_PORT, ports.AUTH_PORT, ports.TENANT_PORT, ports.LOCATION_PORT, ports.BRIDGE_PORT]) {
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
  const [, code] = await printed(/^\[dev\] verification code for e2e-member@fleet\.test: (\S+)$/);
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

  const children = descendants(dev.pid as number);
  expect(children.length).toBeGreaterThanOrEqual(7); // five processes, the Kafka mock, cognito-local
  dev.kill('SIGINT');
  expect(await exited).toBe(0);
  expect(running(children)).toEqual([]);
}, 120_000);
