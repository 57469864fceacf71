import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { CallerDirectory, TokenVerifier } from '../gateway/identity';
import { SUPERGRAPH_CONFIG, composeSupergraph } from '../gateway/supergraph';
import { CALLER_HEADER, signCaller, type Caller } from '../lib/caller';
import { graphql } from '../test/support/client';
import type { BenchContext, BenchResult, ResultRow } from './context';
import { runLoad, type LoadResult } from './loadWorker';
import { fmt, now, ratio, summarize } from './stats';

/**
 * Requests/s and latency of a query that touches all three subgraphs, at a fixed concurrency for a
 * fixed time, through our gateway (Cognito ID token verified and role/tenant read from PostgreSQL
 * on every request) and through a bare @apollo/gateway + @apollo/server on the same HTTP stack
 * (express 5 + expressMiddleware) and the same subgraphs, which sends the same signed caller header
 * for a fixed caller and verifies nothing. The difference is our per-request identity work.
 *
 * The two run alternately (ours, bare, ours, bare, ...) so drift on a shared machine hits both.
 */
export const QUERY = '{ me { email tenant { name devices { name lastLocation { latitude longitude } } } } }';

export interface ThroughputOptions {
  concurrency: number;
  /** Total measured time per target, split into `rounds` alternating slices. */
  durationMs: number;
  rounds: number;
  warmupMs: number;
  identitySamples: number;
}

const DEFAULTS: ThroughputOptions = { concurrency: 16, durationMs: 10_000, rounds: 2, warmupMs: 1_500, identitySamples: 300 };

/** Adds the signed caller header of one fixed caller to every subgraph fetch, as our gateway would. */
class FixedCallerDataSource extends RemoteGraphQLDataSource {
  constructor(
    url: string,
    private readonly caller: Caller,
    private readonly secret: string,
  ) {
    super({ url });
  }

  override willSendRequest({ request }: GraphQLDataSourceProcessOptions): void {
    request.http?.headers.set(CALLER_HEADER, signCaller(this.caller, this.secret));
  }
}

async function startBareGateway(ctx: BenchContext, caller: Caller): Promise<{ url: string; stop(): Promise<void> }> {
  const { stack } = ctx;
  const supergraphSdl = composeSupergraph({ configPath: SUPERGRAPH_CONFIG, routingUrls: stack.subgraphUrls });
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ url }) => new FixedCallerDataSource(url!, caller, stack.callerSigningSecret),
  });
  const app = express();
  const httpServer = http.createServer(app);
  const server = new ApolloServer({ gateway, plugins: [ApolloServerPluginDrainHttpServer({ httpServer })] });
  await server.start();
  app.use('/graphql', express.json({ limit: '2mb' }), expressMiddleware(server));
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/graphql`, stop: () => server.stop() };
}

interface Measured {
  latencies: number[];
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  /** Main-thread (gateway + subgraphs) busy time, ms. */
  busyMs: number;
  elu: number[];
}

async function measure(target: Measured, url: string, headers: Record<string, string>, options: ThroughputOptions, durationMs: number): Promise<void> {
  const elu = performance.eventLoopUtilization();
  const result: LoadResult = await runLoad({
    url,
    headers,
    body: JSON.stringify({ query: QUERY }),
    concurrency: options.concurrency,
    durationMs,
    maxRequests: 200_000,
  });
  const used = performance.eventLoopUtilization(elu);
  target.latencies.push(...result.latencies);
  target.errors += result.errors;
  target.firstError ??= result.firstError;
  target.elapsedMs += result.elapsedMs;
  target.busyMs += used.active;
  target.elu.push(used.utilization);
}

/** Sequential calls of the identity steps our gateway runs per request, on the same services. */
async function identityCost(ctx: BenchContext, samples: number): Promise<{ verifyMs: number; callerForMs: number }> {
  const { cognito, db } = ctx.stack;
  const verifier = new TokenVerifier({ region: cognito.region, userPoolId: cognito.userPoolId, clientId: cognito.clientId, issuer: cognito.issuer });
  await verifier.warm();
  const directory = new CallerDirectory(verifier, db);
  const token = ctx.member.token;
  for (let i = 0; i < 20; i++) await directory.callerFor(token);
  let start = now();
  for (let i = 0; i < samples; i++) await verifier.verify(token);
  const verifyMs = (now() - start) / samples;
  start = now();
  for (let i = 0; i < samples; i++) await directory.callerFor(token);
  const callerForMs = (now() - start) / samples;
  return { verifyMs, callerForMs };
}

export async function queryThroughput(ctx: BenchContext, overrides: Partial<ThroughputOptions> = {}): Promise<BenchResult> {
  const options = { ...DEFAULTS, ...overrides };
  const { stack, member, tenantId } = ctx;
  const caller: Caller = { userId: member.userId, email: member.email, role: 'MEMBER', tenantId };
  const bare = await startBareGateway(ctx, caller);
  const notes: string[] = [];
  const ours: Measured = { latencies: [], errors: 0, firstError: null, elapsedMs: 0, busyMs: 0, elu: [] };
  const base: Measured = { latencies: [], errors: 0, firstError: null, elapsedMs: 0, busyMs: 0, elu: [] };
  const ourHeaders = { authorization: `Bearer ${member.token}` };
  let identity: { verifyMs: number; callerForMs: number };
  try {
    // Same answer from both, or the comparison means nothing.
    const [a, b] = await Promise.all([graphql(stack.gatewayUrl, QUERY, {}, { token: member.token }), graphql(bare.url, QUERY)]);
    if (a.errors || b.errors || JSON.stringify(a.data) !== JSON.stringify(b.data)) {
      throw new Error(`the two gateways answer differently: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
    const devices = (a.data as { me: { tenant: { devices: unknown[] } } }).me.tenant.devices.length;

    ctx.log(`throughput: warm-up ${options.warmupMs} ms each`);
    const scratch = (): Measured => ({ latencies: [], errors: 0, firstError: null, elapsedMs: 0, busyMs: 0, elu: [] });
    await measure(scratch(), stack.gatewayUrl, ourHeaders, options, options.warmupMs);
    await measure(scratch(), bare.url, {}, options, options.warmupMs);
    const slice = options.durationMs / options.rounds;
    for (let round = 0; round < options.rounds; round++) {
      ctx.log(`throughput: round ${round + 1}/${options.rounds}, ${slice} ms each, concurrency ${options.concurrency}`);
      await measure(ours, stack.gatewayUrl, ourHeaders, options, slice);
      await measure(base, bare.url, {}, options, slice);
    }
    ctx.log(`throughput: identity cost (${options.identitySamples} sequential calls)`);
    identity = await identityCost(ctx, options.identitySamples);
    notes.push(`The query returns ${devices} devices; their lastLocation fields are read in one batched query (DataLoader) in the location subgraph.`);
  } finally {
    await bare.stop();
  }

  const rps = (m: Measured) => (m.latencies.length * 1000) / m.elapsedMs;
  const busyPerRequest = (m: Measured) => m.busyMs / Math.max(1, m.latencies.length + m.errors);
  const o = summarize(ours.latencies);
  const b = summarize(base.latencies);
  for (const [label, m] of [['ours', ours], ['bare', base]] as const) {
    if (m.errors) notes.push(`${label}: ${m.errors} failed requests; first: ${m.firstError}`);
  }
  notes.push(
    `main-thread event-loop utilization per round: ours ${ours.elu.map((u) => `${fmt(u * 100, 0)}%`).join(', ')}; bare ${base.elu.map((u) => `${fmt(u * 100, 0)}%`).join(', ')} (near 100% = the in-process gateway + subgraphs are CPU-bound on one thread).`,
  );
  const rows: ResultRow[] = [
    {
      metric: `requests/s at concurrency ${options.concurrency} (${fmt(options.durationMs / 1000, 0)} s each, ${options.rounds} alternating rounds)`,
      ours: fmt(rps(ours), 0),
      baseline: fmt(rps(base), 0),
      ratio: ratio(rps(ours), rps(base)),
      note: `${o.count} vs ${b.count} requests`,
    },
    {
      metric: 'latency p50 / p90 / p99, ms',
      ours: `${fmt(o.p50)} / ${fmt(o.p90)} / ${fmt(o.p99)}`,
      baseline: `${fmt(b.p50)} / ${fmt(b.p90)} / ${fmt(b.p99)}`,
      ratio: `${ratio(o.p50, b.p50)} / ${ratio(o.p90, b.p90)} / ${ratio(o.p99, b.p99)}`,
    },
    {
      metric: 'main-thread busy time per request (gateway + 3 subgraphs), ms',
      ours: fmt(busyPerRequest(ours)),
      baseline: fmt(busyPerRequest(base)),
      ratio: ratio(busyPerRequest(ours), busyPerRequest(base)),
      note: 'event-loop active time / requests',
    },
    {
      metric: 'identity per request, sequential: JWT verify / verify + role-tenant lookup, ms',
      ours: `${fmt(identity.verifyMs, 3)} / ${fmt(identity.callerForMs)}`,
      baseline: '0 (fixed caller)',
      ratio: '—',
      note: 'CallerDirectory.callerFor, as the gateway calls it',
    },
  ];
  return {
    name: 'query throughput',
    ours: `our gateway: ${QUERY} with a member's ID token`,
    baseline: 'bare @apollo/gateway + @apollo/server (express 5), same supergraph and subgraphs, fixed signed caller, no token verification or lookup',
    rows,
    notes,
  };
}
