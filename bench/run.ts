import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { z } from 'zod';
import { parseConfig } from '../lib/config';
import { FULL, QUICK, type BenchContext, type PhaseResult } from './context';
import { CpuMeter } from './cpuMeter';
import { createFixtures } from './fixtures';
import { identicalRequests, manyUsers } from './phases/queries';
import { endToEnd } from './phases/endToEnd';
import { ingest } from './phases/ingest';
import { liveFanout, liveGroup, liveLeg } from './phases/live';
import { reconnectStorm } from './phases/storm';
import { startPlatform, type Platform } from './platform';
import { descendants } from './processes';
import { RESULTS_DIR, recordHistory, renderResults, type RunInfo } from './report';
import { monotonicMs } from './stats';

/**
 * `npm run bench [-- <phase> ...]`: the platform as separate processes (tools/localStack.ts), the
 * two baseline gateways on the same subgraph processes, fixtures through the API, then each phase
 * with its load generator, subscribers and publisher in processes of their own. A full run writes
 * bench/results/latest.md and appends to the history; a subset only prints (and writes
 * bench/results/partial.md, not committed). Bounded: a run budget skips what no longer fits, a
 * watchdog stops everything before 15 minutes, and nothing it started is left running.
 */
const PHASES: Array<{ key: string; run: (ctx: BenchContext) => Promise<PhaseResult>; estimateS: number }> = [
  { key: 'identical', run: identicalRequests, estimateS: 50 },
  { key: 'many-users', run: manyUsers, estimateS: 75 },
  { key: 'ingest', run: ingest, estimateS: 90 },
  { key: 'e2e', run: endToEnd, estimateS: 50 },
  // Before the live rows: its RSS reading should not carry their backlogs' garbage.
  { key: 'storm', run: reconnectStorm, estimateS: 130 },
  { key: 'live-leg', run: liveLeg, estimateS: 40 },
  { key: 'live-group', run: liveGroup, estimateS: 70 },
  { key: 'live-fanout', run: liveFanout, estimateS: 90 },
];

const settings = parseConfig(
  z.object({
    /** Short windows, for developing the harness (results are not recorded). */
    BENCH_QUICK: z.enum(['0', '1']).default('0'),
    /** Set: every platform and baseline process writes a CPU profile to bench/results/profiles/. */
    BENCH_CPU_PROFILE: z.enum(['0', '1']).default('0'),
    /** The name of this run in the history ("before", "after", …). */
    BENCH_LABEL: z.string().min(1).optional(),
    /** The PostgreSQL server (its maintenance database): the run creates and drops its own database there. */
    BENCH_POSTGRES_URL: z.string().url().default('postgresql://postgres@127.0.0.1:5432/postgres'),
    BENCH_REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
    /** The bridge's Kafka maxWait: the mock answers empty fetches only after all of it (ENVIRONMENT.md). */
    BENCH_KAFKA_MAX_WAIT_MS: z.coerce.number().int().min(10).max(1000).default(30),
  }),
);

// The AWS SDK (cognito-local's set-up) warns on every start that its 2027 releases need Node 22.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const RUN_BUDGET_S = 780;
const WATCHDOG_MS = 840_000;
const started = monotonicMs();
const elapsedS = () => (monotonicMs() - started) / 1000;
const log = (message: string) => process.stderr.write(`[bench +${elapsedS().toFixed(1)}s] ${message}\n`);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');

function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', '.'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

function printRows(results: PhaseResult[]): void {
  for (const result of results) {
    process.stdout.write(`\n${result.name}\n`);
    for (const row of result.rows) {
      const ratio = row.ours !== null && row.baseline ? ` (${(row.ours / row.baseline).toFixed(2)}x ${row.baselineName ?? 'baseline'})` : '';
      process.stdout.write(`  ${row.goal.padEnd(3)} ${row.metric}: ${row.ours === null ? '—' : row.ours.toFixed(2)}${ratio}${row.target ? ` target ${row.target.text}` : ''}${row.failed ? ` FAILED: ${row.failed}` : ''}\n`);
    }
  }
}

function commandOf(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 160)}`;
  } catch {
    return `${pid} (gone)`;
  }
}

let platform: Platform | null = null;
let stopping: Promise<void> | null = null;

/** Stops the platform, then makes sure no process this run started is still there. */
function shutdown(): Promise<void> {
  stopping ??= (async () => {
    await platform?.stop().catch((error: unknown) => log(`stopping the platform: ${String(error)}`));
    // tsx's esbuild service belongs to this process's own loader and ends with it.
    const left = descendants(process.pid).filter((pid) => !/esbuild.* --service=/.test(commandOf(pid)));
    if (left.length) {
      log(`still running after stop: ${left.map(commandOf).join('; ')}; killing them`);
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    } else {
      log('nothing left running');
    }
  })();
  return stopping;
}

async function main(): Promise<number> {
  const selected = process.argv.slice(2);
  const unknown = selected.filter((key) => !PHASES.some((p) => p.key === key));
  if (unknown.length) {
    process.stderr.write(`unknown phase(s) ${unknown.join(', ')}; choose from ${PHASES.map((p) => p.key).join(', ')}\n`);
    return 2;
  }
  const full = selected.length === 0 && settings.BENCH_QUICK === '0';
  const toRun = selected.length ? PHASES.filter((p) => selected.includes(p.key)) : PHASES;
  const loadBefore = os.loadavg();
  const profileDir = settings.BENCH_CPU_PROFILE === '1' ? path.join(RESULTS_DIR, 'profiles', stamp) : null;
  const logFile = path.resolve(__dirname, '..', '.local', 'bench', `${stamp}.log`);
  log(`platform and baselines as separate processes; their logs: ${path.relative(process.cwd(), logFile)}${profileDir ? `; CPU profiles: ${path.relative(process.cwd(), profileDir)}` : ''}`);

  platform = await startPlatform({
    postgresUrl: settings.BENCH_POSTGRES_URL,
    redisUrl: settings.BENCH_REDIS_URL,
    kafkaMaxWaitMs: settings.BENCH_KAFKA_MAX_WAIT_MS,
    profileDir,
    logFile,
    log,
  });
  const owner = new pg.Client({ connectionString: platform.ownerUrl });
  await owner.connect();
  const results: PhaseResult[] = [];
  const failures: string[] = [];
  try {
    const fixtures = await createFixtures(platform, log);
    const baselines = await platform.startBaselines(fixtures.queryUsers.map((u) => u.caller));
    const running = platform;
    const ctx: BenchContext = {
      platform,
      fixtures,
      baselines,
      meter: new CpuMeter(() => running.pids() as Record<string, number>, owner, platform.database),
      settings: settings.BENCH_QUICK === '1' ? QUICK : FULL,
      log,
      workerLog: (line) => process.stderr.write(`  ${line}\n`),
    };
    for (const phase of toRun) {
      if (elapsedS() + phase.estimateS > RUN_BUDGET_S) {
        failures.push(`${phase.key}: skipped, it would not fit in the run budget (${RUN_BUDGET_S} s)`);
        log(failures.at(-1)!);
        continue;
      }
      const t = monotonicMs();
      try {
        log(`phase ${phase.key}`);
        results.push(await phase.run(ctx));
        log(`phase ${phase.key} done in ${((monotonicMs() - t) / 1000).toFixed(1)} s`);
      } catch (error) {
        failures.push(`${phase.key}: ${error instanceof Error ? error.message : String(error)}`);
        log(`phase ${phase.key} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      }
    }
  } finally {
    await owner.end().catch(() => undefined);
    await shutdown();
  }

  printRows(results);
  const info: RunInfo = {
    label: settings.BENCH_LABEL ?? `run ${new Date().toISOString().slice(0, 16)}`,
    date: new Date().toISOString(),
    commit: commit(),
    node: process.version,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}`,
    loadBefore,
    loadAfter: os.loadavg(),
    durationS: elapsedS(),
    phases: toRun.map((p) => p.key),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  if (full) {
    writeFileSync(path.join(RESULTS_DIR, 'latest.md'), renderResults(info, results, failures));
    recordHistory(info, results);
    log(`wrote bench/results/latest.md and appended to bench/results/history.md (${elapsedS().toFixed(0)} s)`);
  } else {
    writeFileSync(path.join(RESULTS_DIR, 'partial.md'), renderResults(info, results, failures));
    log('partial or quick run: wrote bench/results/partial.md only');
  }
  for (const failure of failures) log(`failed: ${failure}`);
  return failures.length ? 1 : 0;
}

const watchdog = setTimeout(() => {
  log(`still running after ${WATCHDOG_MS / 1000} s: stopping everything`);
  const hard = setTimeout(() => process.exit(3), 45_000);
  hard.unref();
  void shutdown().finally(() => process.exit(3));
}, WATCHDOG_MS);
watchdog.unref();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything`);
    void shutdown().finally(() => process.exit(130));
  });
}

// Exit explicitly: a client library's idle handle must not keep a finished run alive.
main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    log(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await shutdown();
    process.exit(1);
  },
);
