import { once } from 'node:events';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { adminSession, createTenant, graphql, memberOf, registerDevice, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { connectDashboard, type Dashboard } from '../support/subscriber';
import { createAppClient, decodeClaims } from '../support/tokens';

/**
 * Token refresh on an open socket: a dashboard stays connected across ID-token lifetimes by handing
 * the gateway a fresh token in a graphql-ws `ping`. The app client here issues ID tokens that live
 * ID_TOKEN_SECONDS, so three refreshes span several lifetimes while locations stream.
 */
const ID_TOKEN_SECONDS = 4;
let stack: TestStack;
let member: Session;
let tenantId: string;
let deviceId: string;
const dashboards: Dashboard[] = [];

beforeAll(async () => {
  const sdk = new CognitoIdentityProviderClient({
    endpoint: process.env.TEST_COGNITO_ENDPOINT,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const shortLived = await createAppClient(sdk, process.env.TEST_COGNITO_USER_POOL_ID as string, ID_TOKEN_SECONDS);
  sdk.destroy();
  stack = await startTestStack({ cognitoClientId: shortLived });
  const admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin);
  member = await memberOf(stack, admin, tenantId);
  deviceId = await registerDevice(stack, member);
});
afterAll(async () => {
  await Promise.all(dashboards.map((d) => d.dispose()));
  await stack?.stop();
});

async function refreshed(session: Session): Promise<string> {
  const response = await graphql(stack.gatewayUrl, 'mutation($r: String!) { refreshSession(refreshToken: $r) { idToken } }', { r: session.refreshToken });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.refreshSession.idToken;
}

async function recordOne(latitude: number): Promise<string> {
  const response = await graphql(stack.gatewayUrl, 'mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', { i: { deviceId, latitude, longitude: 0 } }, {
    token: await refreshed(member),
  });
  if (!response.data) throw new Error(JSON.stringify(response.errors));
  return response.data.recordLocation.id;
}

function dashboard(token: string): Dashboard {
  const opened = connectDashboard(stack.wsUrl, token);
  dashboards.push(opened);
  return opened;
}

test('a token refreshed three times on one socket: the socket never closes, every location arrives once, in order', async () => {
  const socket = dashboard(await refreshed(member));
  let closedWith: number | null = null;
  void socket.closed.then(({ code }) => (closedWith = code));
  const before = stack.gateway.subscriptions.size;
  const live = socket.subscribe('subscription($t: ID!, $d: ID) { locationUpdated(tenantId: $t, deviceId: $d) { id sequence } }', { t: tenantId, d: deviceId });
  while (stack.gateway.subscriptions.size <= before) await once(stack.gateway.subscriptions, 'changed');

  const sent: string[] = [];
  let latestExpiry = 0;
  for (let refresh = 0; refresh < 3; refresh++) {
    // Stream until the socket's current token is about to expire, then hand over a fresh one.
    const deadline = latestExpiry || Date.now() + ID_TOKEN_SECONDS * 1000;
    while (Date.now() < deadline - 1500) sent.push(await recordOne(sent.length % 80));
    const token = await refreshed(member);
    const pong = await socket.refresh(token);
    expect(pong?.expiresAt).toBe(new Date((decodeClaims(token).exp as number) * 1000).toISOString());
    expect(JSON.stringify(pong)).not.toContain(token);
    latestExpiry = Date.parse(pong?.expiresAt as string);
  }
  // Past the first three tokens' lifetimes; the socket is still the same one.
  while (Date.now() < latestExpiry - 1500) sent.push(await recordOne(sent.length % 80));
  const results = await live.waitFor(sent.length, 30_000);
  expect(results.map((r) => r.data.locationUpdated.id)).toEqual(sent);
  expect(closedWith).toBeNull();
});

test("another user's token closes the socket with 4403; a token that does not verify, with 4401", async () => {
  const other = await memberOf(stack, await adminSession(stack), tenantId, 'other');
  const stolen = dashboard(await refreshed(member));
  void stolen.refresh(await refreshed(other));
  expect((await stolen.closed).code).toBe(4403);
  const garbage = dashboard(await refreshed(member));
  void garbage.refresh('not-a-jwt');
  expect((await garbage.closed).code).toBe(4401);
});

test('without a refresh the socket still closes with 4401 when its token expires', async () => {
  const socket = dashboard(await refreshed(member));
  expect((await socket.closed).code).toBe(4401);
});
