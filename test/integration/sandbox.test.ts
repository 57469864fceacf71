import type { RunningGateway } from '../../gateway/server';
import { adminSession, type Session } from '../support/client';
import { startGatewayReplica } from '../support/gatewayReplica';
import { startTestStack, type TestStack } from '../support/stack';

/**
 * Apollo Sandbox and introspection in development only, and CSRF prevention: a request a browser
 * would send cross-site without a preflight runs only if it carries Authorization (or a header
 * Apollo's clients set), so a GET query with a token keeps working as the contract promises.
 */
let stack: TestStack;
let production: RunningGateway;
let admin: Session;
const INTROSPECTION = '{ __schema { queryType { name } } }';

beforeAll(async () => {
  stack = await startTestStack({ bridge: false });
  production = await startGatewayReplica(stack, 0, { sandbox: false });
  admin = await adminSession(stack);
});
afterAll(async () => {
  await production?.stop();
  await stack?.stop();
});

const post = (url: string, query: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
const get = (url: string, query: string, headers: Record<string, string> = {}) => fetch(`${url}?query=${encodeURIComponent(query)}`, { headers });

test('development: GET /graphql in a browser is Apollo Sandbox, and introspection answers', async () => {
  const page = await fetch(stack.gatewayUrl, { headers: { accept: 'text/html' } });
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/text\/html/);
  expect(await page.text()).toMatch(/embeddable-sandbox/);
  const schema = (await (await post(stack.gatewayUrl, INTROSPECTION)).json()) as { data?: unknown };
  expect(schema.data).toEqual({ __schema: { queryType: { name: 'Query' } } });
});

test('production: no landing page, and introspection is refused with BAD_USER_INPUT', async () => {
  const page = await fetch(production.url, { headers: { accept: 'text/html' } });
  expect(page.headers.get('content-type')).not.toMatch(/text\/html/);
  expect(await page.text()).not.toMatch(/sandbox/i);
  for (const headers of [{}, { authorization: `Bearer ${admin.token}` }] as Array<Record<string, string>>) {
    const refused = (await (await post(production.url, INTROSPECTION, headers)).json()) as { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
    expect(refused.data).toBeUndefined();
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(refused.errors?.[0]?.message).toMatch(/introspection/i);
  }
  // The API itself is unchanged.
  const me = (await (await post(production.url, '{ me { email } }', { authorization: `Bearer ${admin.token}` })).json()) as { data?: { me: { email: string } } };
  expect(me.data?.me.email).toBe(stack.admin.email);
});

test('CSRF: a simple GET is refused, a simple POST too; a GET with Authorization runs', async () => {
  const simpleGet = await get(stack.gatewayUrl, '{ __typename }');
  expect(simpleGet.status).toBe(400);
  const body = (await simpleGet.json()) as { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
  expect(body.data).toBeUndefined();
  expect(body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  expect(body.errors?.[0]?.message).toMatch(/CSRF/);
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const simplePost = await fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': type }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect(simplePost.status).toBeGreaterThanOrEqual(400);
    expect(((await simplePost.json()) as { data?: unknown }).data).toBeUndefined();
  }

  const withToken = await get(stack.gatewayUrl, '{ me { email } }', { authorization: `Bearer ${admin.token}` });
  expect(withToken.status).toBe(200);
  expect(await withToken.json()).toEqual({ data: { me: { email: stack.admin.email } } });
  // What Apollo's own clients send instead (Sandbox, Apollo Client with a preflight header).
  const preflighted = await get(stack.gatewayUrl, '{ __typename }', { 'apollo-require-preflight': 'true' });
  expect(await preflighted.json()).toEqual({ data: { __typename: 'Query' } });
});
