import { CALLER_HEADER, signCaller } from '../../lib/caller';
import { graphql } from '../../test/support/client';
import type { BenchContext, PhaseResult, Row } from '../context';
import { addUsage, type CpuUsage } from '../cpuMeter';
import type { QueryLoadInput, QueryLoadResult } from '../load/queryLoad';
import { PLATFORM_PROCESSES } from '../platform';
import { fmt } from '../stats';
import { startWorker } from '../workers';

/**
 * Goals 1-3: the dashboard query through our gateway and through the two baselines, on the same
 * subgraph processes, 16 connections, alternating targets round by round so drift on a shared
 * machine hits all of them. CPU per request is read for every process in each window.
 */
export const QUERY = '{ me { email tenant { name devices { name lastLocation { latitude longitude } } } } }';
const CONNECTIONS = 16;
/** Pre-signed caller headers outlive the whole run (the watchdog ends it before). */
const SIGNATURE_TTL_MS = 30 * 60_000;

interface Target {
  key: string;
  label: string;
  url: string;
  headerSets: Array<Record<string, string>>;
  /** The processes that serve it (its gateway, the subgraphs, PostgreSQL). */
  stack: string[];
}

interface Measured {
  served: number;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  p50: number[];
  p99: number[];
  /** Requests/s of each round, to see the drift the alternation evens out. */
  rounds: number[];
  cpu: CpuUsage | null;
}

const SUBGRAPHS = ['auth', 'tenant', 'location', 'postgres'];

async function window(ctx: BenchContext, target: Target, durationS: number, into: Measured | null): Promise<void> {
  const input: QueryLoadInput = { url: target.url, query: QUERY, headerSets: target.headerSets, connections: CONNECTIONS, durationS };
  const worker = startWorker('bench/load/queryLoad.ts', input, { name: `load:${target.key}`, log: ctx.workerLog });
  try {
    await worker.next('ready', 30_000);
    const end = await ctx.meter.start({ 'load generator': worker.pid });
    worker.send({ type: 'go' });
    const result = await worker.next<QueryLoadResult & { [key: string]: unknown }>('result', durationS * 1000 + 30_000);
    const cpu = await end();
    if (!into) return;
    into.served += result.served;
    into.errors += result.errors;
    into.firstError ??= result.firstError;
    into.elapsedMs += result.elapsedMs;
    into.p50.push(result.latencyP50);
    into.p99.push(result.latencyP99);
    into.rounds.push((result.served * 1000) / Math.max(1, result.elapsedMs));
    into.cpu = addUsage(into.cpu, cpu);
  } finally {
    await worker.stop();
  }
}

async function measure(ctx: BenchContext, targets: Target[]): Promise<Map<string, Measured>> {
  const { queryWindowS, queryRounds, warmupS } = ctx.settings;
  const measured = new Map<string, Measured>(targets.map((t) => [t.key, { served: 0, errors: 0, firstError: null, elapsedMs: 0, p50: [], p99: [], rounds: [], cpu: null }]));
  for (const target of targets) {
    ctx.log(`queries: warm-up ${target.label} (${warmupS} s)`);
    await window(ctx, target, warmupS, null);
  }
  const slice = Math.max(1, Math.round(queryWindowS / queryRounds));
  for (let round = 1; round <= queryRounds; round++) {
    for (const target of targets) {
      ctx.log(`queries: round ${round}/${queryRounds}, ${target.label}, ${slice} s`);
      await window(ctx, target, slice, measured.get(target.key)!);
    }
  }
  return measured;
}

/** Both sides must answer the same data, or the comparison means nothing. */
async function checkAnswers(ctx: BenchContext, hiveHeaders: Array<Record<string, string>>): Promise<void> {
  const { queryUsers } = ctx.fixtures;
  const ours = await Promise.all(queryUsers.map((u) => graphql(ctx.platform.gatewayUrl, QUERY, {}, { token: u.session.token })));
  const hive = await Promise.all(hiveHeaders.map((headers) => graphql(ctx.baselines.hiveUrl, QUERY, {}, { headers })));
  for (const [i, answer] of ours.entries()) {
    const devices = (answer.data as { me?: { tenant?: { devices?: unknown[] } } } | null)?.me?.tenant?.devices?.length;
    if (answer.errors || devices !== 7) throw new Error(`our gateway answered user ${i} with ${JSON.stringify(answer).slice(0, 300)}`);
    if (JSON.stringify(hive[i]!.data) !== JSON.stringify(answer.data) || hive[i]!.errors) throw new Error(`Hive Gateway answers user ${i} differently: ${JSON.stringify(hive[i]).slice(0, 300)}`);
  }
  // The bare gateway takes its callers in turn: twenty requests in a row are the twenty users.
  const bare: string[] = [];
  for (let i = 0; i < queryUsers.length; i++) {
    const answer = await graphql(ctx.baselines.apolloUrl, QUERY);
    if (answer.errors) throw new Error(`bare @apollo/gateway answered with errors: ${JSON.stringify(answer.errors)}`);
    bare.push(JSON.stringify(answer.data));
  }
  const expected = ours.map((a) => JSON.stringify(a.data)).sort();
  if (JSON.stringify(bare.sort()) !== JSON.stringify(expected)) throw new Error('bare @apollo/gateway answers the twenty users differently from ours');
}

const rps = (m: Measured) => (m.served * 1000) / Math.max(1, m.elapsedMs);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const perRequest = (m: Measured, processes: string[]) => processes.reduce((sum, p) => sum + (m.cpu?.byProcess[p] ?? 0), 0) / Math.max(1, m.served + m.errors);

function cpuTable(columns: Array<{ title: string; m: Measured }>): string {
  const processes = [...PLATFORM_PROCESSES, 'postgres', 'apollo', 'hive', 'load generator'];
  const lines = [`| CPU ms per request | ${columns.map((c) => c.title).join(' | ')} |`, `| --- |${columns.map(() => ' --- |').join('')}`];
  for (const p of processes) lines.push(`| ${p} | ${columns.map((c) => fmt(perRequest(c.m, [p]))).join(' | ')} |`);
  lines.push(`| requests (errors) | ${columns.map((c) => `${c.m.served} (${c.m.errors})`).join(' | ')} |`);
  return lines.join('\n');
}

function roundsNote(targets: Target[], measured: Map<string, Measured>): string {
  return `Requests/s per round (the targets alternate round by round): ${targets.map((t) => `${t.label} ${measured.get(t.key)!.rounds.map((r) => fmt(r, 0)).join(' / ')}`).join('; ')}.`;
}

function errorsOf(measured: Map<string, Measured>, targets: Target[]): string | undefined {
  const failed = targets.filter((t) => measured.get(t.key)!.errors > 0);
  return failed.length ? failed.map((t) => `${t.label}: ${measured.get(t.key)!.errors} failed requests, first: ${measured.get(t.key)!.firstError}`).join('; ') : undefined;
}

export async function identicalRequests(ctx: BenchContext): Promise<PhaseResult> {
  const user = ctx.fixtures.queryUsers[0]!;
  const header = { [CALLER_HEADER]: signCaller(user.caller, ctx.platform.callerSigningSecret, Date.now(), SIGNATURE_TTL_MS) };
  const hiveHeaders = ctx.fixtures.queryUsers.map((u) => ({ [CALLER_HEADER]: signCaller(u.caller, ctx.platform.callerSigningSecret, Date.now(), SIGNATURE_TTL_MS) }));
  await checkAnswers(ctx, hiveHeaders);
  const targets: Target[] = [
    { key: 'ours', label: 'our gateway', url: ctx.platform.gatewayUrl, headerSets: [{ authorization: `Bearer ${user.session.token}` }], stack: ['gateway', ...SUBGRAPHS] },
    { key: 'hive', label: 'Hive Gateway', url: ctx.baselines.hiveUrl, headerSets: [header], stack: ['hive', ...SUBGRAPHS] },
  ];
  const measured = await measure(ctx, targets);
  const ours = measured.get('ours')!;
  const hive = measured.get('hive')!;
  const failed = errorsOf(measured, targets);
  const rows: Row[] = [
    {
      goal: '1',
      metric: `identical requests (1 user, ${CONNECTIONS} connections): requests/s, ours vs Hive Gateway defaults`,
      ours: rps(ours),
      baseline: rps(hive),
      baselineName: 'Hive',
      target: { on: 'ratio', atLeast: 1, text: '≥ 1.0x' },
      digits: 0,
      failed,
    },
    { goal: '', metric: 'identical requests: latency p50, ms (mean of rounds)', ours: mean(ours.p50), baseline: mean(hive.p50), baselineName: 'Hive', target: null },
    { goal: '', metric: 'identical requests: latency p99, ms (mean of rounds)', ours: mean(ours.p99), baseline: mean(hive.p99), baselineName: 'Hive', target: null },
    { goal: '', metric: 'identical requests: gateway CPU ms per request', ours: perRequest(ours, ['gateway']), baseline: perRequest(hive, ['hive']), baselineName: 'Hive', target: null },
    {
      goal: '',
      metric: 'identical requests: subgraphs + PostgreSQL CPU ms per request',
      ours: perRequest(ours, SUBGRAPHS),
      baseline: perRequest(hive, SUBGRAPHS),
      baselineName: 'Hive',
      target: null,
      note: 'Hive sends the subgraphs fewer fetches: it merges identical in-flight ones',
    },
  ];
  return {
    name: 'identical requests',
    rows,
    notes: [
      `Query \`${QUERY}\` (7 devices with a location each), ${CONNECTIONS} connections, autocannon in its own process; ${ctx.settings.queryRounds} alternating round(s) of ~${Math.round(ctx.settings.queryWindowS / ctx.settings.queryRounds)} s per target after a ${ctx.settings.warmupS} s warm-up each.`,
      'Ours: one member\'s Cognito ID token on every request. Hive Gateway 2.15 with its defaults: the same member as a pre-signed `x-fleet-caller` header, forwarded to the subgraphs (propagateHeaders); it verifies no token.',
      roundsNote(targets, measured),
    ],
    tables: [cpuTable([{ title: 'ours', m: ours }, { title: 'Hive', m: hive }])],
  };
}

export async function manyUsers(ctx: BenchContext): Promise<PhaseResult> {
  const users = ctx.fixtures.queryUsers;
  const hiveHeaders = users.map((u) => ({ [CALLER_HEADER]: signCaller(u.caller, ctx.platform.callerSigningSecret, Date.now(), SIGNATURE_TTL_MS) }));
  await checkAnswers(ctx, hiveHeaders);
  const targets: Target[] = [
    { key: 'ours', label: 'our gateway', url: ctx.platform.gatewayUrl, headerSets: users.map((u) => ({ authorization: `Bearer ${u.session.token}` })), stack: ['gateway', ...SUBGRAPHS] },
    { key: 'apollo', label: 'bare @apollo/gateway', url: ctx.baselines.apolloUrl, headerSets: [{}], stack: ['apollo', ...SUBGRAPHS] },
    { key: 'hive', label: 'Hive Gateway', url: ctx.baselines.hiveUrl, headerSets: hiveHeaders, stack: ['hive', ...SUBGRAPHS] },
  ];
  const measured = await measure(ctx, targets);
  const ours = measured.get('ours')!;
  const apollo = measured.get('apollo')!;
  const hive = measured.get('hive')!;
  const failed = errorsOf(measured, targets);
  const tenants = new Set(users.map((u) => u.tenantId)).size;
  const ourStack = [...PLATFORM_PROCESSES, 'postgres'];
  const rows: Row[] = [
    {
      goal: '2a',
      metric: `many users (${users.length} members of ${tenants} tenants, in turn): requests/s, ours vs bare @apollo/gateway (no auth)`,
      ours: rps(ours),
      baseline: rps(apollo),
      baselineName: 'Apollo',
      target: { on: 'ratio', atLeast: 0.95, text: '≥ 0.95x' },
      digits: 0,
      failed,
    },
    {
      goal: '2b',
      metric: `many users: requests/s, ours vs Hive Gateway with the same ${users.length} callers`,
      ours: rps(ours),
      baseline: rps(hive),
      baselineName: 'Hive',
      target: { on: 'ratio', atLeast: 1, text: '≥ 1.0x' },
      digits: 0,
      failed,
    },
    { goal: '', metric: 'many users: latency p50 / p99, ms (mean of rounds), vs Apollo', ours: mean(ours.p50), baseline: mean(apollo.p50), baselineName: 'Apollo', target: null, note: `p99 ${fmt(mean(ours.p99))} vs ${fmt(mean(apollo.p99))} (Hive ${fmt(mean(hive.p50))} / ${fmt(mean(hive.p99))})` },
    { goal: '', metric: 'many users: gateway CPU ms per request, vs Apollo', ours: perRequest(ours, ['gateway']), baseline: perRequest(apollo, ['apollo']), baselineName: 'Apollo', target: null, note: `Hive ${fmt(perRequest(hive, ['hive']))}` },
    {
      goal: '3a',
      metric: `whole stack: requests/s with ${users.length} users (our gateway)`,
      ours: rps(ours),
      baseline: null,
      target: { on: 'ours', atLeast: 400, text: '≥ 400' },
      digits: 0,
      failed,
    },
    {
      goal: '3b',
      metric: 'whole stack: CPU ms per request, all processes (gateway, 3 subgraphs, bridge, PostgreSQL), vs the same stack behind bare Apollo',
      ours: perRequest(ours, ourStack),
      baseline: perRequest(apollo, ['apollo', 'auth', 'tenant', 'location', 'bridge', 'postgres']),
      baselineName: 'Apollo stack',
      target: { on: 'ours', atMost: 5, text: 'well under 5 (< 5)' },
      failed,
      note: `gateway ${fmt(perRequest(ours, ['gateway']))}, subgraphs ${fmt(perRequest(ours, ['auth', 'tenant', 'location']))}, PostgreSQL ${fmt(perRequest(ours, ['postgres']))}, bridge (idle) ${fmt(perRequest(ours, ['bridge']))}`,
    },
  ];
  const lost = [ours, apollo, hive].reduce((n, m) => n + (m.cpu?.postgresBackendsLost ?? 0), 0);
  return {
    name: 'many users and the whole stack',
    rows,
    notes: [
      `${users.length} members of ${tenants} tenants (each tenant: 7 devices with a location), requests taking the users in turn across all ${CONNECTIONS} connections, so concurrent requests are different callers.`,
      'Ours: each user\'s Cognito ID token. Bare @apollo/gateway 2.14 + @apollo/server 5 (express 5, default fetcher), no authentication, signing the same users in turn into `x-fleet-caller`. Hive Gateway: the same users as pre-signed headers in turn.',
      roundsNote(targets, measured),
      `PostgreSQL: the backends of the bench's database, sampled every 250 ms${lost ? ` (${lost} backend(s) ended during a window: up to 250 ms of their CPU each is missing)` : ''}. The bridge is in every window although no query touches it: with the Kafka mock it polls every ${ctx.platform.kafkaMaxWaitMs} ms while idle.`,
    ],
    tables: [cpuTable([{ title: 'ours', m: ours }, { title: 'Apollo', m: apollo }, { title: 'Hive', m: hive }])],
  };
}
