import { readFileSync } from 'node:fs';
import http from 'node:http';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { z } from 'zod';
import { CALLER_HEADER, callerSchema, signCaller, type Caller } from '../../lib/caller';
import { callerEnv, loadConfig, port } from '../../lib/config';

/**
 * Baseline (a): a bare @apollo/gateway + @apollo/server on the same HTTP stack as ours (express 5,
 * expressMiddleware), with Apollo's defaults (including its default fetcher), no authentication at
 * all. Its data source adds the signed caller header the subgraphs require, taking the configured
 * callers in turn, one per incoming request: with one caller it is a fixed caller, with twenty it
 * spreads the load over twenty users as our gateway's many-users row does.
 */
const config = loadConfig(
  callerEnv.extend({
    PORT: port(0),
    SUPERGRAPH_PATH: z.string().min(1),
    /** JSON array of callers (lib/caller.ts) to sign in turn. */
    BENCH_CALLERS: z.string().transform((text) => z.array(callerSchema).min(1).parse(JSON.parse(text))),
  }),
);

interface RequestContext {
  caller: Caller;
}

class SignedCallerDataSource extends RemoteGraphQLDataSource<RequestContext> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<RequestContext>): void {
    // Signed per fetch, as our gateway does.
    request.http?.headers.set(CALLER_HEADER, signCaller(context.caller, config.CALLER_SIGNING_SECRET));
  }
}

async function main(): Promise<void> {
  const gateway = new ApolloGateway({
    supergraphSdl: readFileSync(config.SUPERGRAPH_PATH, 'utf8'),
    buildService: ({ url }) => new SignedCallerDataSource({ url }),
  });
  const app = express();
  const httpServer = http.createServer(app);
  const server = new ApolloServer<RequestContext>({ gateway, plugins: [ApolloServerPluginDrainHttpServer({ httpServer })] });
  await server.start();
  let turn = 0;
  app.get('/health', (_req, res) => void res.json({ status: 'ok' }));
  app.use(
    '/graphql',
    express.json({ limit: '2mb' }),
    expressMiddleware(server, { context: async () => ({ caller: config.BENCH_CALLERS[turn++ % config.BENCH_CALLERS.length]! }) }),
  );
  await new Promise<void>((resolve) => httpServer.listen(config.PORT, '127.0.0.1', resolve));
  const stop = () => void server.stop().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`bare @apollo/gateway failed to start: ${String(error)}\n`);
  process.exit(1);
});
