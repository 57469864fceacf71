import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { EXAMPLE_SECRETS } from '../lib/config';
import { startCognitoLocal, type CognitoLocal } from './cognito-local';
import { startKafkaMock, type KafkaMock } from './kafka-mock';
import { migrate } from './migrate';

/**
 * The local platform: infrastructure from the environment when configured, otherwise local
 * stand-ins (a librdkafka mock broker, cognito-local), then the five processes as children.
 * `npm run dev` and the end-to-end tests both use it, so what the tests start is what a newcomer runs.
 */
export const ROOT = path.resolve(__dirname, '..');

export type Env = Record<string, string | undefined>;

export interface Infrastructure {
  /** The environment the five processes need, completed with the stand-ins' addresses. */
  env: Record<string, string>;
  kafka: KafkaMock | null;
  cognito: CognitoLocal | null;
  stop(): Promise<void>;
}

export interface InfrastructureOptions {
  env: Env;
  /** For cognito-local: keep its users across restarts (dev) or use a throwaway folder (tests). */
  cognitoDataDir?: string;
  cognitoPort?: number;
  log?: (message: string) => void;
}

const DEFAULTS: Record<string, string> = {
  DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/fleet',
  REDIS_URL: 'redis://127.0.0.1:6379',
  REDIS_PREFIX: 'fleet:',
  KAFKA_TOPIC: 'locations',
  AWS_REGION: 'us-east-1',
  ADMIN_EMAIL: 'admin@fleet.local',
  // The repository's example values: refused outside development (lib/config.ts).
  ADMIN_PASSWORD: EXAMPLE_SECRETS.ADMIN_PASSWORD,
  CALLER_SIGNING_SECRET: EXAMPLE_SECRETS.CALLER_SIGNING_SECRET,
};

/** fleet_app on the same server and database as the owner URL (local development and tests). */
export function appUrlFor(ownerUrl: string): string {
  const url = new URL(ownerUrl);
  url.username = 'fleet_app';
  url.password = EXAMPLE_SECRETS.FLEET_APP_PASSWORD;
  return url.toString();
}

function defined(env: Env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
}

export async function startInfrastructure(options: InfrastructureOptions): Promise<Infrastructure> {
  const log = options.log ?? (() => undefined);
  const env: Record<string, string> = { ...DEFAULTS, ...defined(options.env) };
  env.APP_DATABASE_URL ??= appUrlFor(env.DATABASE_URL as string);
  let kafka: KafkaMock | null = null;
  let cognito: CognitoLocal | null = null;
  const stop = async () => {
    await Promise.all([kafka?.stop(), cognito?.stop()]);
  };
  try {
    const { applied } = await migrate({ databaseUrl: env.DATABASE_URL as string, appDatabaseUrl: env.APP_DATABASE_URL, createDatabase: true });
    log(`database ready (${applied.length} migration(s) applied)`);

    if (!env.KAFKA_BROKERS) {
      const topic = env.KAFKA_TOPIC as string;
      kafka = await startKafkaMock({ topics: [{ name: topic, partitions: 4 }, { name: `${topic}.dlq`, partitions: 1 }] });
      env.KAFKA_BROKERS = kafka.bootstrap;
      log(`Kafka stand-in (librdkafka mock) on ${kafka.bootstrap}`);
    }

    const realCognito = env.COGNITO_USER_POOL_ID && env.COGNITO_CLIENT_ID;
    if (!realCognito) {
      cognito = await startCognitoLocal({ port: options.cognitoPort, dataDir: options.cognitoDataDir, region: env.AWS_REGION });
      Object.assign(env, {
        COGNITO_ENDPOINT: cognito.endpoint,
        COGNITO_USER_POOL_ID: cognito.userPoolId,
        COGNITO_CLIENT_ID: cognito.clientId,
        COGNITO_ISSUER: cognito.issuer,
      });
      log(`Cognito stand-in (cognito-local, development only) on ${cognito.endpoint}, pool ${cognito.userPoolId}`);
    }
    // @aws-sdk v3 warns on every start that releases after January 2027 need Node 22.
    env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    return { env, kafka, cognito, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface ProcessSpec {
  name: 'auth' | 'tenant' | 'location' | 'bridge' | 'gateway';
  entry: string;
  port: number;
}

export function processSpecs(env: Record<string, string>): ProcessSpec[] {
  const port = (name: string, fallback: number) => Number(env[name] ?? fallback);
  return [
    { name: 'auth', entry: 'subgraphs/auth/main.ts', port: port('AUTH_PORT', 4001) },
    { name: 'tenant', entry: 'subgraphs/tenant/main.ts', port: port('TENANT_PORT', 4002) },
    { name: 'location', entry: 'subgraphs/location/main.ts', port: port('LOCATION_PORT', 4003) },
    { name: 'bridge', entry: 'bridge/main.ts', port: port('BRIDGE_PORT', 4004) },
    { name: 'gateway', entry: 'gateway/main.ts', port: port('GATEWAY_PORT', 4000) },
  ];
}

export interface RunningProcess {
  spec: ProcessSpec;
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** tsx's loader, for `node --import`: the process runs as node itself, no tsx CLI in between. */
const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;

/**
 * Starts one process, each output line prefixed with its name.
 *
 * Three things make sure it cannot outlive the runner. It is node itself (`--import tsx`), not
 * the tsx CLI, which would run it as a grandchild that a signal or SIGKILL to the CLI misses. It
 * leads its own process group, so `stopProcesses` signals everything it might have started, and a
 * terminal's Ctrl-C reaches only the runner, which stops the children in order. And it holds the
 * read end of a pipe whose write end only the runner has (STOP_WHEN_STDIN_CLOSES): however the
 * runner dies, even by SIGKILL, the pipe closes and the process stops (lib/shutdown.ts).
 */
export function startProcess(spec: ProcessSpec, env: Record<string, string>, onLine: (name: string, line: string) => void): RunningProcess {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, spec.entry], {
    cwd: ROOT,
    env: { ...process.env, ...env, STOP_WHEN_STDIN_CLOSES: 'true' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdin?.on('error', () => {}); // EPIPE once the child is gone: nothing to do
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => onLine(spec.name, line));
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { spec, child, exited };
}

/** Polls `GET /health` until 200 (an HTTP status has no event to await) or the deadline passes. */
export async function waitForHealth(url: string, deadline: number, exited?: Promise<unknown>): Promise<void> {
  let gone = false;
  void exited?.then(() => {
    gone = true;
  });
  while (Date.now() < deadline) {
    if (gone) throw new Error(`${url}: the process exited before it became healthy`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${url} did not answer 200 in time`);
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** Signals a child's whole process group (see startProcess); a group already gone is fine. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * SIGTERM each process group, wait for all to exit (each drains within its SHUTDOWN_TIMEOUT_MS),
 * SIGKILL a group still there after `graceMs`, and whatever is left of a group once its leader
 * exited (a process it started and did not stop).
 */
export async function stopProcesses(processes: RunningProcess[], graceMs = 15_000): Promise<void> {
  await Promise.all(
    processes.map(async ({ child, exited }) => {
      if (isRunning(child)) {
        signalGroup(child, 'SIGTERM');
        const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      signalGroup(child, 'SIGKILL');
    }),
  );
}

/**
 * At once and synchronously (usable in an `exit` handler): SIGKILL the groups of the processes
 * still running. Only those: the pid of a reaped process may already belong to someone else.
 */
export function killProcesses(processes: RunningProcess[]): void {
  for (const { child } of processes) if (isRunning(child)) signalGroup(child, 'SIGKILL');
}
