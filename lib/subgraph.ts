import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginInlineTraceDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import express from 'express';
import type { DocumentNode } from 'graphql';
import { CALLER_HEADER, verifyCaller, type Caller } from './caller';
import { formatFleetError } from './errors';
import { answerHealth, localUrl, type HealthChecks } from './health';
import type { Logger } from './logger';
import { answerRequestError, answerUnknownPath, graphqlJsonBody, requireJsonBody } from './requestErrors';

/**
 * One federation subgraph over HTTP: `POST /graphql` and `GET /health`. Every subgraph process is
 * this plus its own SDL, resolvers and data access. The caller comes only from the gateway's signed
 * header (see caller.ts); anything else is anonymous.
 */
export interface SubgraphRequest {
  caller: Caller | null;
  /** The gateway signed this request (also true for an anonymous client's public mutation). */
  viaGateway: boolean;
  /** `extensions` of the GraphQL request, as sent by the gateway (e.g. the event a subscription resolves). */
  extensions: Record<string, unknown>;
}

export interface SubgraphOptions<Context extends object> {
  name: string;
  typeDefs: DocumentNode;
  resolvers: GraphQLResolverMap<Context>;
  port: number;
  /** Default loopback: only the gateway should reach a subgraph (HOST, lib/config.ts). */
  host?: string;
  callerSigningSecret: string;
  logger: Logger;
  health: HealthChecks;
  context(request: SubgraphRequest): Context | Promise<Context>;
}

export interface RunningSubgraph {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startSubgraph<Context extends object>(options: SubgraphOptions<Context>): Promise<RunningSubgraph> {
  const { logger } = options;
  const app = express();
  const httpServer = http.createServer(app);
  const server = new ApolloServer<Context>({
    schema: buildSubgraphSchema([{ typeDefs: options.typeDefs, resolvers: options.resolvers as GraphQLResolverMap<unknown> }]),
    // Inline traces are for Apollo's usage reporting, which this platform does not use.
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), ApolloServerPluginLandingPageDisabled(), ApolloServerPluginInlineTraceDisabled()],
    includeStacktraceInErrorResponses: false,
    // Its own SIGINT/SIGTERM handlers would stop the server and re-raise the signal, which the
    // process's shutdown (lib/shutdown.ts) takes for a second signal and exits without draining.
    stopOnTerminationSignals: false,
    formatError: (formatted, error) =>
      formatFleetError(formatted, () => logger.error({ err: error, path: formatted.path }, 'resolver failed')),
  });
  await server.start();

  app.get('/health', (_req, res) => void answerHealth(options.health, res));
  app.use(
    '/graphql',
    requireJsonBody,
    graphqlJsonBody,
    expressMiddleware(server, {
      context: async ({ req }) => {
        const header = req.headers[CALLER_HEADER];
        const { caller, viaGateway } = verifyCaller(Array.isArray(header) ? header[0] : header, options.callerSigningSecret);
        const body = req.body as { extensions?: Record<string, unknown> } | undefined;
        return options.context({ caller, viaGateway, extensions: body?.extensions ?? {} });
      },
    }),
  );

  app.use(answerUnknownPath);
  app.use(answerRequestError(logger));

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, host, () => resolve());
  });
  const { port } = httpServer.address() as AddressInfo;
  const url = localUrl(host, port, '/graphql');
  logger.info({ url, subgraph: options.name }, 'subgraph listening');
  return {
    url,
    port,
    // ApolloServer.stop drains in-flight requests through the drain plugin, then closes the server.
    stop: () => server.stop(),
  };
}
