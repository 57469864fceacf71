import { randomUUID } from 'node:crypto';
import { verificationCode } from './mailbox';
import type { TestStack } from './stack';

/** A GraphQL-over-HTTP client for tests, as a dashboard or device app would call the gateway. */
export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: Array<{ message: string; path?: unknown[]; extensions?: Record<string, unknown> }>;
}

export async function graphql<T = any>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: { token?: string; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

/** The error codes of a response, in order (the contract's `extensions.code`). */
export function codes(response: GraphQLResponse): unknown[] {
  return (response.errors ?? []).map((e) => e.extensions?.code);
}

export interface Session {
  token: string;
  refreshToken: string;
  userId: string;
  email: string;
}

export async function login(stack: TestStack, email: string, password: string): Promise<Session> {
  const response = await graphql(stack.gatewayUrl, 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { idToken refreshToken user { id email } } }', { e: email, p: password });
  if (!response.data?.login) throw new Error(`login failed: ${JSON.stringify(response.errors)}`);
  const { idToken, refreshToken, user } = response.data.login;
  return { token: idToken, refreshToken, userId: user.id, email: user.email };
}

export function adminSession(stack: TestStack): Promise<Session> {
  return login(stack, stack.admin.email, stack.admin.password);
}

/** Registers a user and confirms the email with the code the pool sent (the mailbox owner's way). */
export async function registerConfirmed(stack: TestStack, email: string, password: string): Promise<string> {
  const registered = await graphql(stack.gatewayUrl, 'mutation($e: String!, $p: String!) { register(email: $e, password: $p) { id } }', { e: email, p: password });
  if (!registered.data?.register) throw new Error(`register failed: ${JSON.stringify(registered.errors)}`);
  const confirmed = await graphql(stack.gatewayUrl, 'mutation($e: String!, $c: String!) { confirmRegistration(email: $e, code: $c) { id } }', { e: email, c: verificationCode(email) });
  if (!confirmed.data?.confirmRegistration) throw new Error(`confirmRegistration failed: ${JSON.stringify(confirmed.errors)}`);
  return confirmed.data.confirmRegistration.id;
}

/** Registers and confirms a user, puts them in the tenant, and logs in (so the token carries the tenant). */
export async function memberOf(stack: TestStack, admin: Session, tenantId: string | null, label = 'member'): Promise<Session> {
  const email = `${label}-${randomUUID().slice(0, 8)}@fleet.test`;
  const password = 'member-password-1';
  await registerConfirmed(stack, email, password);
  if (tenantId) {
    const added = await graphql(stack.gatewayUrl, 'mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', { t: tenantId, e: email }, { token: admin.token });
    if (!added.data?.addTenantMember) throw new Error(`addTenantMember failed: ${JSON.stringify(added.errors)}`);
  }
  return login(stack, email, password);
}

export async function createTenant(stack: TestStack, admin: Session, name = `tenant-${randomUUID().slice(0, 8)}`): Promise<string> {
  const response = await graphql(stack.gatewayUrl, 'mutation($n: String!) { createTenant(name: $n) { id } }', { n: name }, { token: admin.token });
  if (!response.data?.createTenant) throw new Error(`createTenant failed: ${JSON.stringify(response.errors)}`);
  return response.data.createTenant.id;
}

export async function registerDevice(stack: TestStack, member: Session, name = `device-${randomUUID().slice(0, 6)}`): Promise<string> {
  const response = await graphql(stack.gatewayUrl, 'mutation($n: String!) { registerDevice(name: $n) { id } }', { n: name }, { token: member.token });
  if (!response.data?.registerDevice) throw new Error(`registerDevice failed: ${JSON.stringify(response.errors)}`);
  return response.data.registerDevice.id;
}

export async function recordLocation(stack: TestStack, member: Session, input: Record<string, unknown>): Promise<{ id: string; sequence: number }> {
  const response = await graphql(stack.gatewayUrl, 'mutation($i: LocationInput!) { recordLocation(input: $i) { id sequence } }', { i: input }, { token: member.token });
  if (!response.data?.recordLocation) throw new Error(`recordLocation failed: ${JSON.stringify(response.errors)}`);
  return response.data.recordLocation;
}
