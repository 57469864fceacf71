import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { startTestStack, type TestStack } from '../support/stack';

/**
 * The HTTP edge of every process: a request that never reaches GraphQL (not JSON, another content
 * type, too large, badly encoded, an unknown path) gets the GraphQL error shape with a 4xx, never
 * Express's HTML page and its stack trace; and where each process listens (only the gateway's
 * public port on all interfaces it is given; subgraphs, the bridge's status port and the gateway's
 * metrics on loopback). The whole platform in-process on real services.
 */
let stack: TestStack;
let targets: Array<[string, string]>;

beforeAll(async () => {
  stack = await startTestStack();
  targets = [
    ['gateway', stack.gatewayUrl],
    ['auth', stack.subgraphUrls.auth],
    ['tenant', stack.subgraphUrls.tenant],
    ['location', stack.subgraphUrls.location],
  ];
}, 120_000);
afterAll(() => stack?.stop());

interface Answer {
  status: number;
  contentType: string | null;
  text: string;
}

async function send(url: string, init: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

/** The contract's error shape, a JSON body, nothing of our insides. */
function expectGraphQLError(answer: Answer, status: number, code: string, message: RegExp): void {
  expect({ status: answer.status, contentType: answer.contentType }).toEqual({ status, contentType: expect.stringMatching(/^application\/json/) });
  const body = JSON.parse(answer.text) as { errors: Array<{ message: string; extensions: { code: string } }> };
  expect(body).toEqual({ errors: [{ message: expect.stringMatching(message), extensions: { code } }] });
  expect(answer.text).not.toMatch(/node_modules|\bat \S+ \(|<html|SyntaxError|PayloadTooLargeError/i);
}

const json = { 'content-type': 'application/json' };

describe.each([['gateway'], ['auth'], ['tenant'], ['location']])('%s', (name) => {
  const url = () => (targets.find(([target]) => target === name) as [string, string])[1];

  test('a body that is not JSON: 400 BAD_USER_INPUT', async () => {
    expectGraphQLError(await send(url(), { method: 'POST', headers: json, body: '{"query": ' }), 400, 'BAD_USER_INPUT', /not valid JSON/);
    expectGraphQLError(await send(url(), { method: 'POST', headers: json, body: '"a string"' }), 400, 'BAD_USER_INPUT', /not valid JSON/);
  });

  test('another content type, or none: 415 BAD_USER_INPUT', async () => {
    expectGraphQLError(await send(url(), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"query":"{ __typename }"}' }), 415, 'BAD_USER_INPUT', /application\/json/);
    expectGraphQLError(
      await send(url(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7B__typename%7D' }),
      415,
      'BAD_USER_INPUT',
      /application\/json/,
    );
    expectGraphQLError(await send(url(), { method: 'POST', body: new Blob(['{"query":"{ __typename }"}']) }), 415, 'BAD_USER_INPUT', /application\/json/);
  });

  test('a body over 2 MiB: 413 BAD_USER_INPUT', async () => {
    const body = JSON.stringify({ query: '{ __typename }', variables: { padding: 'x'.repeat(2 * 1024 * 1024) } });
    expectGraphQLError(await send(url(), { method: 'POST', headers: json, body }), 413, 'BAD_USER_INPUT', /larger than 2048 KiB/);
  });

  test('an unsupported charset or encoding: 415; a body that does not inflate: 400', async () => {
    const body = '{"query":"{ __typename }"}';
    expectGraphQLError(await send(url(), { method: 'POST', headers: { 'content-type': 'application/json; charset=klingon' }, body }), 415, 'BAD_USER_INPUT', /charset/);
    expectGraphQLError(await send(url(), { method: 'POST', headers: { ...json, 'content-encoding': 'compress' }, body }), 415, 'BAD_USER_INPUT', /Content-Encoding/);
    expectGraphQLError(await send(url(), { method: 'POST', headers: { ...json, 'content-encoding': 'gzip' }, body }), 400, 'BAD_USER_INPUT', /could not be read/);
  });

  test('an unknown path: 404 NOT_FOUND, as JSON', async () => {
    const base = url().replace(/\/graphql$/, '');
    expectGraphQLError(await send(`${base}/nothing-here`, { method: 'GET' }), 404, 'NOT_FOUND', /GraphQL is at \/graphql/);
    expectGraphQLError(await send(`${base}/nothing-here`, { method: 'POST', headers: json, body: '{' }), 404, 'NOT_FOUND', /GraphQL is at \/graphql/);
  });

  test('a well-formed request still works, gzipped too', async () => {
    const answer = await send(url(), { method: 'POST', headers: { ...json, 'content-encoding': 'gzip' }, body: gzipSync('{"query":"{ __typename }"}') });
    expect({ status: answer.status, body: JSON.parse(answer.text) }).toEqual({ status: 200, body: { data: { __typename: 'Query' } } });
  });
});

/** Local addresses listening on `port` (IPv4 and IPv6), from the kernel's socket tables: no traffic sent. */
function listeningOn(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const addresses: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      const [address, portHex] = (local as string).split(':');
      if (state !== '0A' || portHex !== hexPort) continue; // 0A: LISTEN
      if (address === '0100007F') addresses.push('127.0.0.1');
      else if (/^0+$/.test(address as string)) addresses.push(table.endsWith('6') ? '::' : '0.0.0.0');
      else addresses.push(address as string);
    }
  }
  return addresses.sort();
}

const portOf = (url: string) => Number(new URL(url).port);

describe('where each process listens', () => {
  test('subgraphs, the bridge status port and the gateway metrics port: loopback only', () => {
    const internal = {
      auth: portOf(stack.subgraphUrls.auth),
      tenant: portOf(stack.subgraphUrls.tenant),
      location: portOf(stack.subgraphUrls.location),
      bridgeStatus: portOf(stack.bridge!.statusUrl),
      gatewayMetrics: portOf(stack.gateway.metricsUrl),
    };
    for (const [name, port] of Object.entries(internal)) expect({ name, listening: listeningOn(port) }).toEqual({ name, listening: ['127.0.0.1'] });
  });

  test("the gateway's /metrics moved off the public port", async () => {
    const publicBase = stack.gatewayUrl.replace(/\/graphql$/, '');
    expectGraphQLError(await send(`${publicBase}/metrics`, { method: 'GET' }), 404, 'NOT_FOUND', /GraphQL is at \/graphql/);
    expect((await fetch(`${publicBase}/health`)).status).toBe(200);
    const metrics = await send(`${stack.gateway.metricsUrl}/metrics`, { method: 'GET' });
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^fleet_gateway_subscriptions\{[^}]*\} \d+$/m);
    expect((await fetch(`${stack.gateway.metricsUrl}/health`)).status).toBe(200);
  });
});
