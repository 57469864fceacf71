import type { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { adminSession, codes, graphql, type GraphQLResponse, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import {
  cognitoAdmin,
  cognitoLocalKey,
  createAppClient,
  decodeClaims,
  idTokenClaims,
  mintJwt,
  otherPoolUser,
  signIn,
  strangerKey,
} from '../support/tokens';

/**
 * CONTRACT.md "Authentication": a token is accepted only if its signature, issuer, audience (app
 * client), `token_use` and expiry all check out. Each case below is wrong in one way (minted with
 * cognito-local's own key, or really issued by the emulator) and must be refused over HTTP (401,
 * UNAUTHENTICATED, no detail) and over graphql-ws (close 4401/4403). The control case proves the
 * minting itself is right, so each refusal is about the one thing its case changes.
 */
const ME = '{ me { id } }';
const LOGIN = 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { idToken accessToken expiresIn user { id email } } }';
/** Words that would tell a client (or an attacker) which check failed or how the gateway is built. */
const LEAKS = /jwks|\bkid\b|issuer|audience|aws-jwt-verify|Jwt[A-Za-z]*Error|token_use|signature|stack ?trace|exception|\bat .+:\d+:\d+/i;

let stack: TestStack;
let sdk: CognitoIdentityProviderClient;
let admin: Session;
const tokens: Record<string, string> = {};

beforeAll(async () => {
  stack = await startTestStack({ bridge: false });
  sdk = cognitoAdmin(stack);
  admin = await adminSession(stack);
  const { email, password } = stack.admin;
  const nowS = Math.floor(Date.now() / 1000);
  const claims = (overrides: Record<string, unknown> = {}) => idTokenClaims(stack, admin, overrides);

  tokens.control = mintJwt(claims());
  tokens.algNone = mintJwt(claims(), { header: { alg: 'none' } });
  tokens.algNoneSigned = mintJwt(claims(), { header: { alg: 'none' }, key: cognitoLocalKey() });
  tokens.wrongKey = mintJwt(claims(), { key: strangerKey() });
  tokens.unknownKid = mintJwt(claims(), { header: { kid: 'not-a-published-key' } });
  tokens.mintedWrongIssuer = mintJwt(claims({ iss: `${stack.cognito.endpoint}/local_someOtherPool` }));
  tokens.mintedWrongAudience = mintJwt(claims({ aud: 'some-other-app-client' }));
  tokens.mintedExpired = mintJwt(claims({ iat: nowS - 3660, auth_time: nowS - 3660, exp: nowS - 60 }));
  tokens.mintedAccessUse = mintJwt(claims({ token_use: 'access' }));

  // Really issued by the emulator.
  const otherPool = await otherPoolUser(sdk);
  tokens.otherPool = (await signIn(sdk, otherPool.clientId, otherPool.email, otherPool.password)).idToken;
  const otherClient = await createAppClient(sdk, stack.cognito.userPoolId);
  tokens.otherClient = (await signIn(sdk, otherClient, email, password)).idToken;
  const login = await graphql(stack.gatewayUrl, LOGIN, { e: email, p: password });
  tokens.accessToken = login.data.login.accessToken;
});

afterAll(async () => {
  sdk?.destroy();
  await stack?.stop();
});

/** What the gateway answers to `{ me { id } }` with this Authorization header. */
const askMe = (authorization: string) => graphql(stack.gatewayUrl, ME, {}, { headers: { authorization } });

function expectRefusedOverHttp(response: GraphQLResponse): void {
  expect(response.status).toBe(401);
  expect(response.data ?? null).toBeNull();
  expect(codes(response)).toEqual(['UNAUTHENTICATED']);
  const [error] = response.errors ?? [];
  expect(Object.keys(error?.extensions ?? {})).toEqual(['code']);
  expect(error?.message).not.toMatch(LEAKS);
  expect(JSON.stringify(response)).not.toMatch(LEAKS);
}

/** A graphql-ws client that connects at once and never retries; resolves how its socket ended. */
function openSocket(connectionParams: Record<string, unknown>) {
  let connected = false;
  let client!: Client;
  const opened = new Promise<void>((resolve) => {
    client = createClient({
      url: stack.wsUrl,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams,
      onNonLazyError: () => undefined,
    });
    client.on('connected', () => {
      connected = true;
      resolve();
    });
  });
  const closed = new Promise<{ code: number; reason: string; wasConnected: boolean }>((resolve) =>
    client.on('closed', (event) => {
      const { code, reason } = event as { code: number; reason: string };
      resolve({ code, reason: String(reason), wasConnected: connected });
    }),
  );
  return { client, opened, closed };
}

async function expectRefusedOverWebSocket(authorization: string): Promise<void> {
  const { client, closed } = openSocket({ authorization });
  const { code, reason, wasConnected } = await closed;
  await client.dispose();
  expect(wasConnected).toBe(false);
  expect([4401, 4403]).toContain(code);
  expect(reason).not.toMatch(LEAKS);
}

const cases: Array<[string, () => string]> = [
  ['alg "none" with kid CognitoLocal and an empty signature', () => tokens.algNone!],
  ['alg "none" but carrying an RS256 signature by the real key', () => tokens.algNoneSigned!],
  ['signed by another RSA key under kid CognitoLocal', () => tokens.wrongKey!],
  ['an unknown kid', () => tokens.unknownKid!],
  ['minted with the real key for another issuer', () => tokens.mintedWrongIssuer!],
  ['issued by another user pool of the same emulator (wrong issuer)', () => tokens.otherPool!],
  ['minted with the real key for another audience', () => tokens.mintedWrongAudience!],
  ['issued to another app client of the same pool (wrong audience)', () => tokens.otherClient!],
  ['the access token from login instead of the ID token', () => tokens.accessToken!],
  ['expired (exp a minute ago)', () => tokens.mintedExpired!],
  ['valid signature, issuer and audience but token_use "access"', () => tokens.mintedAccessUse!],
  ['not a JWT: abc', () => 'abc'],
  ['not a JWT: a.b.c', () => 'a.b.c'],
];

describe('a token that does not verify', () => {
  test.each(cases)('%s: 401 UNAUTHENTICATED over HTTP', async (_name, token) => {
    expectRefusedOverHttp(await askMe(`Bearer ${token()}`));
  });

  test.each(cases)('%s: socket closed 4401/4403 over graphql-ws', async (_name, token) => {
    await expectRefusedOverWebSocket(`Bearer ${token()}`);
  });
});

describe('an Authorization value that is not "Bearer <token>"', () => {
  test.each([['empty bearer', 'Bearer '], ['another scheme', 'Basic xyz'], ['a bare token', 'abc']])(
    '%s: 401 UNAUTHENTICATED over HTTP, socket closed over graphql-ws',
    async (_name, authorization) => {
      expectRefusedOverHttp(await askMe(authorization));
      await expectRefusedOverWebSocket(authorization);
    },
  );

  test('connection_init without any authorization closes the socket', async () => {
    const { client, closed } = openSocket({});
    const { code, wasConnected } = await closed;
    await client.dispose();
    expect(wasConnected).toBe(false);
    expect([4401, 4403]).toContain(code);
  });
});

describe('control: a correctly minted token', () => {
  test('decodes to the right issuer, audience and token_use', () => {
    expect(decodeClaims(tokens.control!)).toMatchObject({ iss: stack.cognito.issuer, aud: stack.cognito.clientId, token_use: 'id', sub: admin.userId });
  });

  test('is accepted over HTTP', async () => {
    const response = await askMe(`Bearer ${tokens.control}`);
    expect(response.status).toBe(200);
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ me: { id: admin.userId } });
  });

  test('is accepted over graphql-ws and answers a query on the socket', async () => {
    const { client, opened, closed } = openSocket({ authorization: `Bearer ${tokens.control}` });
    await Promise.race([opened, closed.then((c) => Promise.reject(new Error(`socket closed ${c.code} ${c.reason}`)))]);
    const result = await new Promise<unknown>((resolve, reject) => {
      let value: unknown;
      client.subscribe({ query: ME }, { next: (v) => (value = v), error: reject, complete: () => resolve(value) });
    });
    await client.dispose();
    expect(result).toEqual({ data: { me: { id: admin.userId } } });
  });

  test('the ID token issued by the login mutation is accepted too', async () => {
    const response = await askMe(`Bearer ${admin.token}`);
    expect(response.status).toBe(200);
    expect(response.data).toEqual({ me: { id: admin.userId } });
  });
});

describe('without a token', () => {
  test('me is an UNAUTHENTICATED field error with HTTP 200', async () => {
    const response = await graphql(stack.gatewayUrl, ME);
    expect(response.status).toBe(200);
    expect(codes(response)).toEqual(['UNAUTHENTICATED']);
    expect(response.errors?.[0]?.path).toEqual(['me']);
    expect(response.data).toEqual({ me: null });
  });

  test('the public login mutation works', async () => {
    const response = await graphql(stack.gatewayUrl, LOGIN, { e: stack.admin.email, p: stack.admin.password });
    expect(response.status).toBe(200);
    expect(response.errors).toBeUndefined();
    expect(response.data.login).toMatchObject({ idToken: expect.any(String), accessToken: expect.any(String), user: { id: admin.userId } });
    expect(response.data.login.expiresIn).toBeGreaterThan(0);
  });
});

/**
 * A real token from an app client with IdTokenValidity 5 s would carry that client's `aud`, so the
 * gateway refuses it for its audience before expiry matters. A token minted for the stack's own
 * client with a 3-second lifetime tests expiry alone; the server's own expiry close is the event
 * awaited (no sleep).
 */
describe('a token that expires while its socket is open', () => {
  test('the server closes the socket with 4401 at expiry; the token is refused from then on', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3;
    const shortLived = `Bearer ${mintJwt(idTokenClaims(stack, admin, { exp }))}`;
    const { client, opened, closed } = openSocket({ authorization: shortLived });
    await opened; // valid now
    const { code } = await closed; // the server's expiry close
    await client.dispose();
    expect(code).toBe(4401);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    expectRefusedOverHttp(await askMe(shortLived));
    await expectRefusedOverWebSocket(shortLived);

    // The client reconnects with a fresh token and resumes.
    const fresh = await adminSession(stack);
    const again = openSocket({ authorization: `Bearer ${fresh.token}` });
    await again.opened;
    const me = await new Promise<unknown>((resolve, reject) => {
      again.client.subscribe({ query: '{ me { id } }' }, { next: resolve, error: reject, complete: () => undefined });
    });
    await again.client.dispose();
    expect(me).toEqual({ data: { me: { id: fresh.userId } } });
  });
});
