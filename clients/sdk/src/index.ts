/**
 * The fleet platform's TypeScript SDK. Types and documents are generated from the supergraph's API
 * schema (`npm run codegen`); see the README's "SDK" section for an example.
 */
export { createFleetClient } from './client';
export type { FleetClient, FleetClientOptions, FleetDocument, TokenSource } from './client';
export { signIn } from './session';
export type { FleetSession, SignInOptions } from './session';
export { LocationStream } from './live';
export type { ConnectionState, LiveLocation, LocationStreamOptions } from './live';
export { FleetApiError, FleetConnectionError, FleetNetworkError } from './errors';
export type { ApiError, FleetErrorCode } from './errors';
export * from './graphql';
