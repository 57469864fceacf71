import { graphql } from './client';
import type { TestStack } from './stack';
import { connectDashboard } from './subscriber';

/**
 * One operation over either transport a client may use, with the same outcome shape, so a test
 * can assert that HTTP and graphql-ws answer alike.
 */
export type Transport = 'http' | 'ws';

export interface Outcome {
  data?: any;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

export async function runOver(transport: Transport, stack: TestStack, token: string, query: string, variables: Record<string, unknown> = {}): Promise<Outcome> {
  if (transport === 'http') {
    const { data, errors } = await graphql(stack.gatewayUrl, query, variables, { token });
    return { data, errors };
  }
  const socket = connectDashboard(stack.wsUrl, token);
  try {
    const operation = socket.subscribe(query, variables);
    // A refused operation ends with graphql-ws' `error` message; one that ran sends `next`, then `complete`.
    const refused = await operation.ended();
    if (refused !== undefined) return { errors: refused as Outcome['errors'] };
    const [result] = operation.results;
    return { data: result?.data, errors: result?.errors };
  } finally {
    await socket.dispose();
  }
}

/** The error's code and extensions, for exact comparison (no extension the contract does not name). */
export function extensionsOf(outcome: Outcome): Array<Record<string, unknown> | undefined> {
  return (outcome.errors ?? []).map((e) => e.extensions);
}
