import { randomUUID } from 'node:crypto';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock';
import { freePort } from '../support/redisServer';
import { startEntry, type ChildEntry } from '../support/processes';
import { createTestDatabase } from '../support/testDatabase';

/**
 * One SIGTERM stops a process within SHUTDOWN_TIMEOUT_MS, cleanly (exit 0), even when a dependency
 * is gone: the bridge while Kafka was never reachable (still starting) and after the broker went
 * away (kafkajs retries the lost broker for minutes); the location subgraph and the gateway with
 * Kafka, respectively the subgraphs, unreachable; and a supervised process stops when the parent
 * holding its stdin is gone. Real processes, real PostgreSQL and Redis, the Kafka stand-in.
 */
const SHUTDOWN_TIMEOUT_MS = 4_000;
const children: ChildEntry[] = [];
const mocks: KafkaMock[] = [];

afterEach(async () => {
  for (const entry of children.splice(0)) {
    entry.child.kill('SIGKILL');
    await entry.exited;
  }
  for (const mock of mocks.splice(0)) {
    process.kill(mock.pid, 'SIGCONT'); // stopped by a test
    await mock.stop();
  }
});

function startBridgeProcess(brokers: string, extra: NodeJS.ProcessEnv = {}, stdin: 'pipe' | 'ignore' = 'ignore'): ChildEntry {
  const run = randomUUID().slice(0, 8);
  const entry = startEntry(
    'bridge/main.ts',
    {
      PATH: process.env.PATH,
      LOG_LEVEL: 'info',
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC: `shutdown-${run}`,
      KAFKA_CONSUMER_GROUP: `shutdown-${run}`,
      KAFKA_MAX_WAIT_MS: '50',
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_HEARTBEAT_INTERVAL_MS: '500',
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      REDIS_PREFIX: `test:${run}:`,
      BRIDGE_PORT: '0',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...extra,
    },
    { stdin },
  );
  children.push(entry);
  return entry;
}

test('the bridge stops at once on SIGTERM while it is still trying to reach a Kafka that is not there', async () => {
  const bridge = startBridgeProcess(`127.0.0.1:${await freePort()}`);
  // kafkajs logs each failed attempt; it would keep trying for minutes.
  await bridge.waitForLine(/ECONNREFUSED|Failed to connect/);
  const exit = await bridge.signal('SIGTERM');
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(exit.ms).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
});

test('the bridge stops cleanly within its bound on one SIGTERM when the broker stops answering', async () => {
  const mock = await startKafkaMock();
  mocks.push(mock);
  const bridge = startBridgeProcess(mock.bootstrap);
  await bridge.waitForLine(/"msg":"bridge started"/);
  // A broker that keeps its connections but answers nothing (a partition, a hung host): the fetch
  // in hand waits for kafkajs' request timeout (30 s), and the group leave after it.
  process.kill(mock.pid, 'SIGSTOP');
  const exit = await bridge.signal('SIGTERM');
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(exit.ms).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
  expect(bridge.lines.join('\n')).toMatch(/could not leave the consumer group in time/);
});

test('a supervised process stops when its parent is gone (the write end of its stdin closed)', async () => {
  const mock = await startKafkaMock();
  mocks.push(mock);
  const bridge = startBridgeProcess(mock.bootstrap, { STOP_WHEN_STDIN_CLOSES: 'true' }, 'pipe');
  await bridge.waitForLine(/"msg":"bridge started"/);
  const closed = Date.now();
  bridge.child.stdin!.end();
  const exit = await bridge.exited;
  expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
  expect(Date.now() - closed).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
  expect(bridge.lines.join('\n')).toMatch(/"reason":"stdin closed: the parent process is gone"/);
});

describe('the GraphQL processes drain and exit 0 on one SIGTERM', () => {
  const common = async () => {
    const run = randomUUID().slice(0, 8);
    return {
      PATH: process.env.PATH,
      LOG_LEVEL: 'info',
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      REDIS_PREFIX: `test:${run}:`,
      CALLER_SIGNING_SECRET: `test-secret-${randomUUID()}`,
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
  };
  const drops: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const drop of drops) await drop();
  });

  // Apollo Server's own signal handlers used to stop the server and raise the signal again, which
  // the process took for a second signal: exit 1 at once, database and Redis never closed.
  test('the location subgraph, Kafka unreachable', async () => {
    const database = await createTestDatabase();
    drops.push(() => database.drop());
    const location = startEntry('subgraphs/location/main.ts', {
      ...(await common()),
      APP_DATABASE_URL: database.appUrl,
      KAFKA_BROKERS: `127.0.0.1:${await freePort()}`,
      KAFKA_TOPIC: `shutdown-${randomUUID()}`,
      LOCATION_PORT: '0',
    });
    children.push(location);
    await location.waitForLine(/"msg":"subgraph listening"/);
    const exit = await location.signal('SIGTERM');
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(location.lines.join('\n')).not.toMatch(/second signal/);
  });

  test('the gateway, its subgraphs unreachable', async () => {
    const database = await createTestDatabase();
    drops.push(() => database.drop());
    const closed = async () => `http://127.0.0.1:${await freePort()}/graphql`;
    const gateway = startEntry('gateway/main.ts', {
      ...(await common()),
      APP_DATABASE_URL: database.appUrl,
      GATEWAY_PORT: '0',
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_METRICS_PORT: '0',
      AUTH_URL: await closed(),
      TENANT_URL: await closed(),
      LOCATION_URL: await closed(),
      COGNITO_ENDPOINT: process.env.TEST_COGNITO_ENDPOINT,
      COGNITO_USER_POOL_ID: process.env.TEST_COGNITO_USER_POOL_ID,
      COGNITO_CLIENT_ID: process.env.TEST_COGNITO_CLIENT_ID,
      COGNITO_ISSUER: process.env.TEST_COGNITO_ISSUER,
    });
    children.push(gateway);
    await gateway.waitForLine(/"msg":"gateway listening"/);
    const exit = await gateway.signal('SIGTERM');
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    expect(exit.ms).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(gateway.lines.join('\n')).not.toMatch(/second signal/);
  });
});
