import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SUPERGRAPH_CONFIG, composeSupergraph } from '../gateway/supergraph';
import type { Caller } from '../lib/caller';
import { freePort } from '../test/support/redisServer';
import {
  ROOT,
  processSpecs,
  startInfrastructure,
  startProcess,
  stopProcesses,
  waitForHealth,
  type Infrastructure,
  type RunningProcess,
} from '../tools/localStack';

/**
 * The platform as `npm run dev` and production run it: the five processes, each on its own, started
 * through tools/localStack.ts (used as an API: its internals belong to the dev tooling), on a fresh
 * database, a Redis prefix, Kafka topic and consumer group of this run only, on free ports, so a
 * bench run never disturbs `npm run dev` or a test run. Then the two baseline gateways, in their
 * own processes, on the same subgraph processes and the same composed supergraph.
 */
export interface PlatformOptions {
  postgresUrl: string;
  redisUrl: string;
  /** The bridge's consumer maxWait: the Kafka mock holds empty fetches for all of it. */
  kafkaMaxWaitMs: number;
  /** Set: every platform and baseline process writes a V8 CPU profile here when it stops. */
  profileDir: string | null;
  /** Where the processes' output goes (their logs; warnings and errors only). */
  logFile: string;
  log: (message: string) => void;
}

export type ProcessName = 'gateway' | 'auth' | 'tenant' | 'location' | 'bridge' | 'hive' | 'apollo';
export const PLATFORM_PROCESSES: readonly ProcessName[] = ['gateway', 'auth', 'tenant', 'location', 'bridge'];

export interface Platform {
  run: string;
  gatewayUrl: string;
  wsUrl: string;
  metricsUrl: string;
  subgraphUrls: { auth: string; tenant: string; location: string };
  supergraphPath: string;
  ownerUrl: string;
  database: string;
  redisUrl: string;
  redisPrefix: string;
  topic: string;
  kafkaBrokers: string[];
  cognito: { endpoint: string; userPoolId: string; clientId: string; issuer: string; region: string };
  admin: { email: string; password: string };
  callerSigningSecret: string;
  kafkaMaxWaitMs: number;
  /** Root pid of each running process (the tsx CLI for platform processes; see processes.ts). */
  pids(): Partial<Record<ProcessName, number>>;
  /** Starts both baseline gateways; the bare one signs `callers` in turn. */
  startBaselines(callers: Caller[]): Promise<{ apolloUrl: string; hiveUrl: string }>;
  stop(): Promise<void>;
}

const HEALTH_DEADLINE_MS = 90_000;
const PROFILER = path.resolve(__dirname, 'profiling', 'cpuProfile.cjs');
// The package exports no bin path; its CLI sits next to its main entry.
const HIVE_BIN = path.join(path.dirname(require.resolve('@graphql-hive/gateway')), 'bin.js');
const HIVE_CONFIG = path.resolve(__dirname, 'baselines', 'hiveGateway.config.ts');

interface OwnProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
}

export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  const { log } = options;
  const run = randomBytes(4).toString('hex');
  const database = `fleet_bench_${run}`;
  const owner = new URL(options.postgresUrl);
  owner.pathname = `/${database}`;
  const [gatewayPort, authPort, tenantPort, locationPort, bridgePort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const subgraphUrls = {
    auth: `http://127.0.0.1:${authPort}/graphql`,
    tenant: `http://127.0.0.1:${tenantPort}/graphql`,
    location: `http://127.0.0.1:${locationPort}/graphql`,
  };
  const workDir = mkdtempSync(path.join(tmpdir(), `fleet-bench-${run}-`));
  const supergraphPath = path.join(workDir, 'supergraph.graphql');
  writeFileSync(supergraphPath, composeSupergraph({ configPath: SUPERGRAPH_CONFIG, routingUrls: subgraphUrls }));

  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const logLines: string[] = [];
  const flushLog = () => writeFileSync(options.logFile, logLines.join('\n') + '\n');
  const onLine = (name: string, line: string) => {
    logLines.push(`${name.padEnd(8)} | ${line}`);
    if (logLines.length % 200 === 0) flushLog();
  };

  const admin = { email: `admin-${run}@fleet.bench`, password: `admin-${randomBytes(6).toString('hex')}` };
  const callerSigningSecret = randomBytes(32).toString('base64url');
  // Everything the processes read, stated here: nothing from a .env or the caller's shell leaks in.
  // Production mode, as deployments run it (NODE_ENV also switches graphql-js and Apollo out of
  // their development checks): so every secret is fresh and none is an example value, fleet_app's
  // password included (migrate sets it; the test suites set their own back), and the Cognito
  // emulator is allowed explicitly.
  const appUrl = new URL(owner.toString());
  appUrl.username = 'fleet_app';
  appUrl.password = `bench-${randomBytes(12).toString('hex')}`;
  const settings: Record<string, string> = {
    NODE_ENV: 'production',
    ALLOW_COGNITO_EMULATOR: 'true',
    LOG_LEVEL: 'warn',
    DATABASE_URL: owner.toString(),
    APP_DATABASE_URL: appUrl.toString(),
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: `bench:${run}:`,
    KAFKA_BROKERS: '',
    KAFKA_TOPIC: `locations-bench-${run}`,
    KAFKA_CLIENT_ID: `bench-${run}`,
    KAFKA_CONSUMER_GROUP: `bridge-bench-${run}`,
    KAFKA_MAX_WAIT_MS: String(options.kafkaMaxWaitMs),
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    KAFKA_HEARTBEAT_INTERVAL_MS: '500',
    AWS_REGION: 'us-east-1',
    COGNITO_USER_POOL_ID: '',
    COGNITO_CLIENT_ID: '',
    COGNITO_ENDPOINT: '',
    COGNITO_ISSUER: '',
    ADMIN_EMAIL: admin.email,
    ADMIN_PASSWORD: admin.password,
    CALLER_SIGNING_SECRET: callerSigningSecret,
    GATEWAY_PORT: String(gatewayPort),
    GATEWAY_METRICS_PORT: String(metricsPort),
    AUTH_PORT: String(authPort),
    TENANT_PORT: String(tenantPort),
    LOCATION_PORT: String(locationPort),
    BRIDGE_PORT: String(bridgePort),
    SUPERGRAPH_PATH: supergraphPath,
    AUTH_URL: subgraphUrls.auth,
    TENANT_URL: subgraphUrls.tenant,
    LOCATION_URL: subgraphUrls.location,
  };
  const profiled = (name: string): Record<string, string> =>
    options.profileDir ? { NODE_OPTIONS: `--require ${PROFILER}`, BENCH_PROFILE_DIR: options.profileDir, BENCH_PROFILE_NAME: `${name}-${run}` } : { NODE_OPTIONS: '' };

  let infrastructure: Infrastructure | null = null;
  const running: RunningProcess[] = [];
  const own = new Map<ProcessName, OwnProcess>();
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    log('stopping the platform');
    await Promise.all([...own.values()].map(({ child, exited }) => stopGroup(child, exited)));
    await stopProcesses(running);
    await infrastructure?.stop().catch((error: unknown) => log(`stand-ins: ${String(error)}`));
    await dropDatabase(options.postgresUrl, database).catch((error: unknown) => log(`dropping ${database}: ${String(error)}`));
    await deleteKeys(options.redisUrl, settings.REDIS_PREFIX!).catch((error: unknown) => log(`Redis keys: ${String(error)}`));
    rmSync(workDir, { recursive: true, force: true });
    flushLog();
  };

  try {
    log(`run ${run}: database ${database}, Redis prefix ${settings.REDIS_PREFIX}, topic ${settings.KAFKA_TOPIC}`);
    infrastructure = await startInfrastructure({ env: settings, log: (message) => log(`infrastructure: ${message}`) });
    const env = { ...settings, ...infrastructure.env };
    for (const spec of processSpecs(env)) {
      const started = startProcess(spec, { ...env, ...profiled(spec.name) }, onLine);
      running.push(started);
    }
    const deadline = Date.now() + HEALTH_DEADLINE_MS;
    await Promise.all(running.map((p) => waitForHealth(`http://127.0.0.1:${p.spec.port}/health`, deadline, p.exited)));
    log(`platform healthy: ${running.map((p) => `${p.spec.name} :${p.spec.port}`).join(', ')}`);
    const cognito = infrastructure.cognito!;
    // The fixtures confirm members' emails with the codes the emulator "mailed" (test/support/mailbox.ts).
    process.env.TEST_COGNITO_MAILBOX = cognito.mailbox;

    return {
      run,
      gatewayUrl: `http://127.0.0.1:${gatewayPort}/graphql`,
      wsUrl: `ws://127.0.0.1:${gatewayPort}/graphql`,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      subgraphUrls,
      supergraphPath,
      ownerUrl: owner.toString(),
      database,
      redisUrl: options.redisUrl,
      redisPrefix: settings.REDIS_PREFIX!,
      topic: settings.KAFKA_TOPIC!,
      kafkaBrokers: env.KAFKA_BROKERS!.split(','),
      cognito: { endpoint: cognito.endpoint, userPoolId: cognito.userPoolId, clientId: cognito.clientId, issuer: cognito.issuer, region: cognito.region },
      admin,
      callerSigningSecret,
      kafkaMaxWaitMs: options.kafkaMaxWaitMs,
      pids: () => {
        const pids: Partial<Record<ProcessName, number>> = {};
        for (const p of running) if (p.child.pid && p.child.exitCode === null) pids[p.spec.name] = p.child.pid;
        for (const [name, p] of own) if (p.child.pid && p.child.exitCode === null) pids[name] = p.child.pid;
        return pids;
      },
      startBaselines: async (callers) => {
        const [apolloPort, hivePort] = await Promise.all([freePort(), freePort()]);
        const apollo = startOwn(
          'apollo',
          [process.execPath, '--import', 'tsx', path.resolve(__dirname, 'baselines', 'apolloGateway.ts')],
          { PORT: String(apolloPort), SUPERGRAPH_PATH: supergraphPath, CALLER_SIGNING_SECRET: callerSigningSecret, BENCH_CALLERS: JSON.stringify(callers), ...profiled('apollo') },
          onLine,
        );
        own.set('apollo', apollo);
        const hive = startOwn(
          'hive',
          [process.execPath, HIVE_BIN, 'supergraph', supergraphPath, '--host', '127.0.0.1', '--port', String(hivePort), '--config-path', HIVE_CONFIG],
          { ...profiled('hive') },
          onLine,
        );
        own.set('hive', hive);
        const deadline = Date.now() + HEALTH_DEADLINE_MS;
        await Promise.all([
          waitForHealth(`http://127.0.0.1:${apolloPort}/health`, deadline, apollo.exited),
          waitForHealth(`http://127.0.0.1:${hivePort}/healthcheck`, deadline, hive.exited),
        ]);
        log(`baselines healthy: bare @apollo/gateway :${apolloPort}, Hive Gateway :${hivePort}`);
        return { apolloUrl: `http://127.0.0.1:${apolloPort}/graphql`, hiveUrl: `http://127.0.0.1:${hivePort}/graphql` };
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A baseline process in a process group of its own (stopping it stops whatever it started). */
function startOwn(name: ProcessName, command: string[], env: Record<string, string>, onLine: (name: string, line: string) => void): OwnProcess {
  const [file, ...args] = command;
  const child = spawn(file!, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => onLine(name, line));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

async function stopGroup(child: ChildProcess, exited: Promise<unknown>, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function dropDatabase(serverUrl: string, database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0');
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
