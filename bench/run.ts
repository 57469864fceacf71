import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminSession, createTenant, graphql, memberOf, registerDevice } from '../test/support/client';
import { startStandIns, type StandIns } from '../test/support/standIns';
import { startTestStack, type TestStack } from '../test/support/stack';
import type { BenchContext, BenchResult } from './context';
import { fanout } from './fanout';
import { queryThroughput } from './queryThroughput';
import { now } from './stats';
import { subscriptionLatency } from './subscriptionLatency';

/**
 * `npm run bench [-- latency fanout throughput]`: starts the whole platform in this process (as the
 * integration tests do: real PostgreSQL and Redis, the Kafka mock and cognito-local started here),
 * runs the benchmarks one after another, prints a table and, for a full run, writes
 * bench/results/latest.md. Bounded: every phase has a count and a time limit, the whole run a
 * deadline, and a watchdog ends the process if cleanup ever hangs.
 */
const BENCHMARKS: Array<{ key: string; run: (ctx: BenchContext) => Promise<BenchResult> }> = [
  { key: 'latency', run: (ctx) => subscriptionLatency(ctx) },
  { key: 'fanout', run: (ctx) => fanout(ctx) },
  { key: 'throughput', run: (ctx) => queryThroughput(ctx) },
];
const RUN_BUDGET_MS = 170_000;
const WATCHDOG_MS = 240_000;
const RESULTS = path.resolve(__dirname, 'results', 'latest.md');

const started = now();
const log = (message: string) => process.stderr.write(`[bench +${((now() - started) / 1000).toFixed(1)}s] ${message}\n`);

function machine(): Record<string, string> {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: path.resolve(__dirname, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    commit: `${commit} (plus uncommitted changes, if any)`,
  };
}

async function fixtures(stack: TestStack, deadline: number): Promise<BenchContext> {
  const admin = await adminSession(stack);
  const tenantName = `Bench fleet ${Date.now()}`;
  const tenantId = await createTenant(stack, admin, tenantName);
  const member = await memberOf(stack, admin, tenantId, 'bench');
  const devices: string[] = [];
  for (let i = 1; i <= 5; i++) devices.push(await registerDevice(stack, member, `truck-${i}`));
  const latencyDevice = await registerDevice(stack, member, 'latency-probe');
  const fanoutDevice = await registerDevice(stack, member, 'fanout-probe');
  const inputs = devices.flatMap((deviceId, i) => [0, 1, 2].map((k) => ({ deviceId, latitude: 40 + i + k / 10, longitude: 10 + k })));
  const recorded = await graphql(stack.gatewayUrl, 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs }, { token: member.token });
  if (!recorded.data) throw new Error(`recordLocations failed: ${JSON.stringify(recorded.errors)}`);
  return { stack, admin, tenantId, tenantName, member, devices, latencyDevice, fanoutDevice, deadline, log };
}

function table(results: BenchResult[]): string {
  const lines = ['| benchmark | metric | ours | baseline | ratio (ours / baseline) | note |', '| --- | --- | --- | --- | --- | --- |'];
  for (const result of results) {
    for (const row of result.rows) {
      lines.push(`| ${result.name} | ${row.metric} | ${row.ours} | ${row.baseline} | ${row.ratio} | ${row.note ?? ''} |`);
    }
  }
  return lines.join('\n');
}

function report(info: Record<string, string>, results: BenchResult[], load: { before: number[]; after: number[] }, durationS: number): string {
  const parts = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts); what each number means and the caveats: [../README.md](../README.md).',
    'Compare **ratios** between runs, not absolute times: each baseline is measured in the same run, on the same noisy machine.',
    '',
    '| | |',
    '| --- | --- |',
    ...Object.entries(info).map(([k, v]) => `| ${k} | ${v} |`),
    `| load average (1/5/15 min) before → after | ${load.before.map((v) => v.toFixed(2)).join(' / ')} → ${load.after.map((v) => v.toFixed(2)).join(' / ')} |`,
    `| run time | ${durationS.toFixed(0)} s |`,
    '',
    '## Results',
    '',
    table(results),
    '',
  ];
  for (const result of results) {
    parts.push(`## ${result.name}`, '', `- ours: ${result.ours}`, `- baseline: ${result.baseline}`);
    for (const note of result.notes) parts.push(`- ${note}`);
    parts.push('');
  }
  return parts.join('\n');
}

async function main(): Promise<number> {
  const selected = process.argv.slice(2);
  const unknown = selected.filter((key) => !BENCHMARKS.some((b) => b.key === key));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark(s) ${unknown.join(', ')}; choose from ${BENCHMARKS.map((b) => b.key).join(', ')}\n`);
    return 2;
  }
  const toRun = selected.length ? BENCHMARKS.filter((b) => selected.includes(b.key)) : BENCHMARKS;
  const info = machine();
  const loadBefore = os.loadavg();

  let standIns: StandIns | undefined;
  let stack: TestStack | undefined;
  const results: BenchResult[] = [];
  let failed = false;
  try {
    log('starting the Kafka mock and cognito-local');
    standIns = await startStandIns();
    log('starting the platform (startTestStack)');
    stack = await startTestStack({ limits: { perConnection: 100, perTenant: 10_000, queueCapacity: 1_000 } });
    const ctx = await fixtures(stack, started + RUN_BUDGET_MS);
    for (const bench of toRun) {
      const t = now();
      try {
        results.push(await bench.run(ctx));
        log(`${bench.key} done in ${((now() - t) / 1000).toFixed(1)} s`);
      } catch (error) {
        failed = true;
        log(`${bench.key} failed: ${(error as Error).stack ?? String(error)}`);
        results.push({ name: bench.key, ours: '—', baseline: '—', rows: [{ metric: 'FAILED', ours: '—', baseline: '—', ratio: '—', note: String((error as Error).message ?? error).slice(0, 200) }], notes: [] });
      }
    }
  } finally {
    log('stopping');
    await stack?.stop().catch((error: unknown) => log(`stack stop failed: ${String(error)}`));
    await standIns?.stop().catch((error: unknown) => log(`stand-in stop failed: ${String(error)}`));
  }

  const durationS = (now() - started) / 1000;
  process.stdout.write(`\n${table(results)}\n\n`);
  for (const result of results) for (const note of result.notes) process.stdout.write(`- ${result.name}: ${note}\n`);
  if (selected.length === 0 && !failed) {
    mkdirSync(path.dirname(RESULTS), { recursive: true });
    writeFileSync(RESULTS, report(info, results, { before: loadBefore, after: os.loadavg() }, durationS));
    log(`wrote ${path.relative(process.cwd(), RESULTS)} (${durationS.toFixed(0)} s)`);
  } else {
    log(`not writing ${path.relative(process.cwd(), RESULTS)}: ${failed ? 'a benchmark failed' : 'partial run'}`);
  }
  return failed ? 1 : 0;
}

const watchdog = setTimeout(() => {
  process.stderr.write(`[bench] still running after ${WATCHDOG_MS / 1000} s: giving up\n`);
  process.exit(3);
}, WATCHDOG_MS);
watchdog.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
