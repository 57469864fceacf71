/**
 * Lifecycle API for the local Kafka-protocol mock broker (tools/kafka-mock/kafka-mock.c, built on
 * librdkafka's mock cluster). For development and tests only; see README.md for its limits.
 *
 * CLI: `tsx tools/kafka-mock/index.ts [--brokers N] [topic:partitions ...]` prints the bootstrap
 * address on stdout and runs until SIGINT/SIGTERM.
 */
import { execFile, spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { provideBuildPrerequisites } from './prerequisites';

export interface KafkaMockOptions {
  /** Number of mock brokers (ids 1..brokers). Default 1. */
  brokers?: number;
  /** Topics created before the bootstrap address is reported. */
  topics?: Array<{ name: string; partitions: number }>;
  /** How long to wait for the mock to report its bootstrap address. Default 10 000 ms. */
  startTimeoutMs?: number;
}

export interface KafkaMockExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface KafkaMock {
  /** "127.0.0.1:port", comma-separated when there are several brokers. */
  readonly bootstrap: string;
  /** Process id of the mock (for diagnostics and tests). */
  readonly pid: number;
  /** Settles when the mock process has exited, whether by stop() or on its own (a crash). */
  readonly exited: Promise<KafkaMockExit>;
  createTopic(name: string, partitions: number): Promise<void>;
  /** Disconnects the broker and refuses new connections (no leader change). Default broker 1. */
  setBrokerDown(brokerId?: number): Promise<void>;
  setBrokerUp(brokerId?: number): Promise<void>;
  /** Resolves when the process has exited; idempotent. */
  stop(): Promise<void>;
}

const MOCK_DIR = path.resolve(__dirname);
const SOURCE = path.join(MOCK_DIR, 'kafka-mock.c');
const MAKEFILE = path.join(MOCK_DIR, 'Makefile');
const BINARY = path.join(MOCK_DIR, 'build', 'kafka-mock');
const STDERR_KEEP = 16 * 1024;
const STOP_GRACE_MS = 5000;
// Topic names as Kafka accepts them; also guarantees a name cannot break the line protocol.
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

async function mtimeMs(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

let building: Promise<string> | undefined;

/**
 * Runs `make -C tools/kafka-mock` if the binary is missing or older than its sources, installing
 * librdkafka-dev and a compiler first where it can (see prerequisites.ts).
 */
export function ensureKafkaMockBuilt(): Promise<string> {
  building ??= build().finally(() => {
    building = undefined;
  });
  return building;
}

async function build(): Promise<string> {
  const [bin, src, mk] = await Promise.all([mtimeMs(BINARY), mtimeMs(SOURCE), mtimeMs(MAKEFILE)]);
  if (bin !== undefined && bin >= (src ?? 0) && bin >= (mk ?? 0)) return BINARY;
  await provideBuildPrerequisites();
  await new Promise<void>((resolve, reject) => {
    execFile('make', ['-C', MOCK_DIR], (err, _stdout, stderr) => {
      if (err) {
        reject(new Error(`building kafka-mock failed (make -C ${MOCK_DIR}; needs cc and librdkafka-dev): ${err.message}\n${stderr}`));
      } else resolve();
    });
  });
  return BINARY;
}

function checkTopic(name: string, partitions: number): void {
  if (!TOPIC_NAME.test(name)) throw new Error(`kafka-mock: invalid topic name ${JSON.stringify(name)}`);
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`kafka-mock: invalid partition count ${partitions} for ${name}`);
}

export async function startKafkaMock(options: KafkaMockOptions = {}): Promise<KafkaMock> {
  const brokers = options.brokers ?? 1;
  if (!Number.isInteger(brokers) || brokers < 1 || brokers > 64) throw new Error(`kafka-mock: invalid broker count ${brokers}`);
  const topics = options.topics ?? [];
  for (const t of topics) checkTopic(t.name, t.partitions);
  const binary = await ensureKafkaMockBuilt();

  const child = spawn(binary, ['--brokers', String(brokers), ...topics.map((t) => `${t.name}:${t.partitions}`)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // Own process group: a terminal's Ctrl-C reaches only the parent, which stops the mock in its
    // own order. The mock still exits when the parent dies (EOF on stdin, PR_SET_PDEATHSIG).
    detached: true,
  });

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  // Writes after the child died raise EPIPE on stdin; the exit handler reports the failure.
  child.stdin.on('error', () => {});
  // Later 'error' events (a failed kill) must not crash the parent; 'exited' tells what happened.
  child.on('error', (err) => {
    stderr = `${stderr}[${err.message}]\n`.slice(-STDERR_KEEP);
  });

  let exitInfo: string | undefined;
  let exit: KafkaMockExit = { code: null, signal: null };
  child.once('exit', (code, signal) => {
    exit = { code, signal };
    exitInfo = signal ? `signal ${signal}` : `code ${code}`;
  });
  // 'close' follows 'exit' once stdout/stderr are drained too.
  const exited = new Promise<KafkaMockExit>((resolve) => child.once('close', () => resolve(exit)));

  type Pending = { command: string; resolve: () => void; reject: (err: Error) => void };
  const pending: Pending[] = [];
  let onBootstrap: ((line: string) => void) | undefined;

  const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (onBootstrap) return onBootstrap(line);
    const p = pending.shift();
    if (!p) return; // unsolicited output: nothing is waiting for it
    if (line === 'OK') p.resolve();
    else p.reject(new Error(`kafka-mock: ${p.command}: ${line.replace(/^ERR /, '')}`));
  });

  const bootstrap = await new Promise<string>((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 10_000;
    const fail = (why: string) => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`kafka-mock did not start: ${why}${stderr ? `\nstderr:\n${stderr}` : ''}`));
    };
    const timer = setTimeout(() => fail(`no BOOTSTRAP line within ${timeoutMs} ms`), timeoutMs);
    const onError = (err: Error) => fail(`spawn ${binary}: ${err.message}`);
    const onClose = () => fail(`it exited (${exitInfo ?? 'unknown'}) before reporting its address`);
    const cleanup = () => {
      clearTimeout(timer);
      onBootstrap = undefined;
      child.off('error', onError);
      child.off('close', onClose);
    };
    child.once('error', onError);
    child.once('close', onClose);
    onBootstrap = (line) => {
      const m = /^BOOTSTRAP (\S+)$/.exec(line);
      if (!m?.[1]) return fail(`unexpected first line ${JSON.stringify(line)}`);
      cleanup();
      resolve(m[1]);
    };
  });

  let stopped = false;
  let stopping: Promise<void> | undefined;

  void exited.then(() => {
    stopped = true;
    lines.close();
    const err = new Error(`kafka-mock exited (${exitInfo ?? 'unknown'})${stderr ? `\nstderr:\n${stderr}` : ''}`);
    for (const p of pending.splice(0)) p.reject(err);
  });

  const send = (command: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (stopped || stopping) return reject(new Error(`kafka-mock: ${command}: the mock is stopped`));
      pending.push({ command, resolve, reject });
      child.stdin.write(`${command}\n`);
    });

  const brokerCommand = (verb: 'down' | 'up', brokerId: number): Promise<void> => {
    if (!Number.isInteger(brokerId) || brokerId < 1 || brokerId > brokers) {
      return Promise.reject(new Error(`kafka-mock: unknown broker ${brokerId} (ids are 1..${brokers})`));
    }
    return send(`${verb} ${brokerId}`);
  };

  return {
    bootstrap,
    pid: child.pid!,
    exited,
    createTopic(name, partitions) {
      try {
        checkTopic(name, partitions);
      } catch (err) {
        return Promise.reject(err);
      }
      return send(`topic ${name} ${partitions}`);
    },
    setBrokerDown: (brokerId = 1) => brokerCommand('down', brokerId),
    setBrokerUp: (brokerId = 1) => brokerCommand('up', brokerId),
    stop() {
      stopping ??= (async () => {
        if (stopped) return;
        // EOF on stdin makes the mock exit after answering what it already read.
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        try {
          await exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}

async function main(argv: string[]): Promise<void> {
  let brokers = 1;
  const topics: Array<{ name: string; partitions: number }> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--brokers' || arg.startsWith('--brokers=')) {
      brokers = Number(arg === '--brokers' ? argv[++i] : arg.slice('--brokers='.length));
    } else {
      const m = /^(.+):(\d+)$/.exec(arg);
      if (!m) throw new Error(`usage: tsx tools/kafka-mock/index.ts [--brokers N] [topic:partitions ...] (got ${JSON.stringify(arg)})`);
      topics.push({ name: m[1]!, partitions: Number(m[2]) });
    }
  }
  const mock = await startKafkaMock({ brokers, topics });
  process.stdout.write(`${mock.bootstrap}\n`);
  process.stderr.write(`kafka-mock (pid ${mock.pid}) listening on ${mock.bootstrap}; Ctrl-C to stop\n`);
  let shuttingDown = false;
  const shutdown = () => {
    shuttingDown = true;
    void mock.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  const { code, signal } = await mock.exited;
  if (shuttingDown) return;
  process.stderr.write(`kafka-mock exited on its own (${signal ? `signal ${signal}` : `code ${code}`})\n`);
  process.exit(1);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
