import { defineConfig } from '@graphql-hive/gateway';
import { CALLER_HEADER } from '../../lib/caller';

/**
 * Baseline (b): Hive Gateway with its defaults (including the de-duplication of identical in-flight
 * subgraph requests), started as `hive-gateway supergraph <file> -c <this file>`. It verifies no
 * token: the load generator sends pre-signed caller headers, forwarded to every subgraph fetch.
 */
export const gatewayConfig = defineConfig({
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => ({ [CALLER_HEADER]: request.headers.get(CALLER_HEADER) }),
  },
  // Start-up and failures only, as our processes log in the bench.
  logging: 'warn',
});
