import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import WebSocket from 'ws';
import type { RunningGateway } from '../../gateway/server';
import { FleetApiError, createFleetClient, signIn, type ConnectionState, type FleetClient, type FleetSession, type LiveLocation, type LocationStream, type TokenSource } from '../../clients/sdk/src';
import { startGatewayReplica } from '../support/gatewayReplica';
import { verificationCode } from '../support/mailbox';
import { startTestStack, type TestStack } from '../support/stack';
import { createAppClient } from '../support/tokens';

/**
 * The SDK's live side against the running platform, with ID tokens that live ID_TOKEN_SECONDS:
 * the subscription outlives several tokens (refreshed on the open socket), survives a gateway
 * restart, an expiry it could not prevent (4401) and a membership change (4403), and delivers
 * every location once, in order, throughout.
 */
const ID_TOKEN_SECONDS = 4;
/** Longer than the gateway's slowest hand-over of a resolved event: a duplicate would show within it. */
const QUIET_MS = 750;
let stack: TestStack;
/** Tokens live seconds here: the admin, too, goes through a session that refreshes them. */
let admin: FleetClient;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const cognito = new CognitoIdentityProviderClient({ endpoint: process.env.TEST_COGNITO_ENDPOINT, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const shortLived = await createAppClient(cognito, process.env.TEST_COGNITO_USER_POOL_ID as string, ID_TOKEN_SECONDS);
  cognito.destroy();
  stack = await startTestStack({ cognitoClientId: shortLived, limits: { perConnection: 2 } });
  admin = createFleetClient({ url: stack.gatewayUrl, getToken: (await signIn({ url: stack.gatewayUrl, ...stack.admin })).getToken });
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await stack?.stop();
});

/** A signed-in member of a new tenant with one device, and an SDK client watching its connection states. */
async function fleetMember(options: { url?: string; getToken?: (session: FleetSession) => TokenSource } = {}) {
  const tenantId = (await admin.createTenant(`tenant-${randomUUID().slice(0, 8)}`)).id;
  const login = { email: `live-${randomUUID().slice(0, 8)}@fleet.test`, password: 'member-password-1' };
  const anonymous = createFleetClient({ url: stack.gatewayUrl });
  await anonymous.register(login.email, login.password);
  await anonymous.confirmRegistration(login.email, verificationCode(login.email));
  await admin.addTenantMember(tenantId, login.email);
  const session = await signIn({ url: stack.gatewayUrl, ...login });
  const states: ConnectionState[] = [];
  const changes = new EventEmitter();
  const fleet = createFleetClient({
    url: options.url ?? stack.gatewayUrl,
    getToken: options.getToken?.(session) ?? session.getToken,
    webSocketImpl: WebSocket,
    reconnectDelayMs: { initial: 100, max: 1_000 },
    onConnectionChange: (state) => {
      states.push(state);
      changes.emit('state', state);
    },
  });
  cleanups.push(() => fleet.close());
  // Locations are recorded through the stack's own gateway, whatever the client is connected to.
  const recorder = createFleetClient({ url: stack.gatewayUrl, getToken: session.getToken });
  const device = await recorder.registerDevice('truck');
  const stateReached = async (state: ConnectionState) => {
    while (fleet.connectionState !== state) await once(changes, 'state');
  };
  const record = async (count: number) => (await recorder.recordLocations(Array.from({ length: count }, (_, i) => ({ deviceId: device.id, latitude: i, longitude: i })))).map((l) => l.sequence);
  return { tenantId, login, session, fleet, recorder, device, states, stateReached, record };
}

/** The next `count` locations of the stream (rejects if they do not come within `timeoutMs`). */
async function take(stream: LocationStream, count: number, timeoutMs = 20_000): Promise<LiveLocation[]> {
  const taken: LiveLocation[] = [];
  const deadline = Date.now() + timeoutMs;
  while (taken.length < count) {
    const next = await Promise.race([stream.next(), new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now())).unref())]);
    if (next === 'timeout') throw new Error(`expected ${count} locations, got ${taken.length}: ${taken.map((l) => l.sequence).join(',')}`);
    if (next.done) throw new Error(`the stream ended after ${taken.length} locations`);
    taken.push(next.value);
  }
  return taken;
}

/** Whatever else the stream delivers within a quiet period: a duplicate would be here. */
async function nothingMore(stream: LocationStream): Promise<LiveLocation[]> {
  const more = await Promise.race([stream.next(), new Promise<'quiet'>((resolve) => setTimeout(() => resolve('quiet'), QUIET_MS).unref())]);
  return more === 'quiet' || more.done ? [] : [more.value, ...(await nothingMore(stream))];
}

/** Waits until the gateway has one more subscription than `before`. */
async function subscribed(gateway: RunningGateway, before: number): Promise<void> {
  while (gateway.subscriptions.size <= before) await once(gateway.subscriptions, 'changed');
}

test('a subscription outlives several ID tokens: the SDK hands the socket fresh ones, nothing is lost or repeated', async () => {
  const member = await fleetMember();
  const before = stack.gateway.subscriptions.size;
  const stream = member.fleet.locationUpdated({ tenantId: member.tenantId });
  await subscribed(stack.gateway, before);
  const until = Date.now() + 2.5 * ID_TOKEN_SECONDS * 1000;
  const sent: number[] = [];
  const received: number[] = [];
  while (Date.now() < until) {
    sent.push(...(await member.record(1)));
    received.push(...(await take(stream, 1)).map((l) => l.sequence));
  }
  expect(received).toEqual(sent);
  expect(await nothingMore(stream)).toEqual([]);
  // One connection all along: never closed for expiry, never reconnected.
  expect(member.states).toEqual(['connecting', 'live']);
  stream.close();
});

test('a gateway restart: the SDK reconnects and resumes with `after`, every location once and in order', async () => {
  const replica = await startGatewayReplica(stack);
  let current = replica;
  cleanups.push(() => current.stop());
  const member = await fleetMember({ url: replica.url });
  const stream = member.fleet.locationUpdated({ tenantId: member.tenantId });
  await subscribed(replica, 0);
  const first = await member.record(3);
  expect((await take(stream, 3)).map((l) => l.sequence)).toEqual(first);

  await replica.stop(); // drains, then closes every socket with 1012
  await member.stateReached('reconnecting');
  const missed = await member.record(4); // accepted while the client has no socket
  current = await startGatewayReplica(stack, replica.port);
  await member.stateReached('live');
  const later = await member.record(2);

  const delivered = await take(stream, 6);
  expect(delivered.map((l) => l.sequence)).toEqual([...missed, ...later]);
  expect(await nothingMore(stream)).toEqual([]);
  expect(member.states).toEqual(['connecting', 'live', 'reconnecting', 'live']);
  stream.close();
});

test('a token that expires on the socket (4401): the SDK reconnects with a refreshed one and resumes', async () => {
  // A token source that cannot refresh until the first token has expired (offline, say).
  let firstToken: string | undefined;
  let stuckUntil = Infinity;
  const member = await fleetMember({
    getToken: (session) => async (options) => {
      if (Date.now() < stuckUntil && firstToken) return firstToken;
      const token = await session.getToken(options);
      if (!firstToken && token) {
        firstToken = token;
        stuckUntil = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).exp * 1000;
      }
      return token;
    },
  });
  const before = stack.gateway.subscriptions.size;
  const stream = member.fleet.locationUpdated({ tenantId: member.tenantId });
  await subscribed(stack.gateway, before);
  const first = await member.record(2);
  expect((await take(stream, 2)).map((l) => l.sequence)).toEqual(first);
  await member.stateReached('reconnecting'); // the gateway closed the socket at expiry
  const during = await member.record(2);
  await member.stateReached('live');
  const after = await member.record(1);
  expect((await take(stream, 3)).map((l) => l.sequence)).toEqual([...during, ...after]);
  expect(await nothingMore(stream)).toEqual([]);
  stream.close();
});

test('a membership change (4403): the SDK reconnects with a fresh token, and the old tenant is no longer served', async () => {
  const member = await fleetMember();
  const before = stack.gateway.subscriptions.size;
  const stream = member.fleet.locationUpdated({ tenantId: member.tenantId });
  await subscribed(stack.gateway, before);
  const elsewhere = (await admin.createTenant(`elsewhere-${randomUUID().slice(0, 8)}`)).id;
  await admin.addTenantMember(elsewhere, member.login.email);
  const ended = await stream.next().then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(ended).toBeInstanceOf(FleetApiError);
  expect((ended as FleetApiError).code).toBe('NOT_FOUND');
  // The reconnection carried the new tenant: the member can follow it now.
  const moved = member.fleet.locationUpdated({ tenantId: elsewhere });
  const device = await member.recorder.registerDevice('moved');
  const recorded = await member.recorder.recordLocation({ deviceId: device.id, latitude: 1, longitude: 1 });
  expect((await take(moved, 1))[0]?.id).toBe(recorded.id);
  moved.close();
});

test('a subscription over the per-connection limit ends with RATE_LIMITED naming the limit', async () => {
  const member = await fleetMember();
  const streams = [0, 1].map(() => member.fleet.locationUpdated({ tenantId: member.tenantId }));
  const third = member.fleet.locationUpdated({ tenantId: member.tenantId });
  const error = await third.next().then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(FleetApiError);
  expect(error).toMatchObject({ code: 'RATE_LIMITED', limit: 'subscriptionsPerConnection', retryAfterMs: 1000 });
  streams.forEach((s) => s.close());
});
