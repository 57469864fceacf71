import { randomUUID } from 'node:crypto';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock';
import { freePort } from '../support/redisServer';
import { startEntry, type ChildEntry } from '../support/processes';

/**
 * One SIGTERM stops a process within SHUTDOWN_TIMEOUT_MS, cleanly (exit 0), even when a dependency
 * is gone: the bridge while Kafka was never reachable (still starting) and after the broker went
 * away (kafkajs retries the lost broker for minutes); and a supervised process stops when the
 * parent holding its stdin is gone. Real processes, real Redis, the Kafka stand-in.
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
