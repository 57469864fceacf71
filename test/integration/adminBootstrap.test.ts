import { AdminDeleteUserCommand, ChangePasswordCommand, CreateUserPoolCommand, type CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { Redis } from 'ioredis';
import { UserPool } from '../../lib/cognito/userPool';
import { createLogger } from '../../lib/logger';
import { startAuthSubgraph } from '../../subgraphs/auth/server';
import { adminSession, codes, graphql, login, type Session } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';
import { CUSTOM_ATTRIBUTES, POOL_SETTINGS } from '../../tools/cognito-local/poolSchema';
import { cognitoAdmin, createAppClient, signIn as cognitoSignIn } from '../support/tokens';

/**
 * The admin bootstrap on every start of the auth subgraph: it creates the ADMIN when missing and
 * leaves an existing account alone, and it survives an ADMIN_EMAIL account that was re-created in
 * Cognito (new `sub`) while the database stayed. "A restart" is another auth subgraph started on the
 * stack's database and pool: its bootstrap is exactly what a restarted process runs.
 */
let stack: TestStack;
let sdk: CognitoIdentityProviderClient;
let redis: Redis;

beforeAll(async () => {
  stack = await startTestStack({ bridge: false });
  sdk = cognitoAdmin(stack);
  redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
});
afterAll(async () => {
  sdk?.destroy();
  redis?.disconnect();
  await stack?.stop();
});

async function restartAuth(userPool: UserPool = stack.userPool): Promise<void> {
  const auth = await startAuthSubgraph({
    port: 0,
    callerSigningSecret: stack.callerSigningSecret,
    db: stack.db,
    userPool,
    // Its announcements reach the stack's gateway, which caches roles: a re-linked ADMIN is one at once.
    redis,
    redisPrefix: stack.redisPrefix,
    admin: stack.admin,
    logger: createLogger('test', 'silent'),
  });
  await auth.stop();
}

const gql = (query: string, variables: Record<string, unknown> = {}, token?: string) => graphql(stack.gatewayUrl, query, variables, { token });
const signIn = (password: string) => gql('mutation($e: String!, $p: String!) { login(email: $e, password: $p) { idToken user { id role } } }', { e: stack.admin.email, p: password });
/** What the admin does to rotate their password: ChangePassword with their own access token. */
async function changePassword(previous: string, proposed: string): Promise<void> {
  const { accessToken } = await cognitoSignIn(sdk, stack.cognito.clientId, stack.admin.email, previous);
  await sdk.send(new ChangePasswordCommand({ AccessToken: accessToken, PreviousPassword: previous, ProposedPassword: proposed }));
}
const deleteAdminAccount = () => sdk.send(new AdminDeleteUserCommand({ UserPoolId: stack.cognito.userPoolId, Username: stack.admin.email }));

test('a rotated admin password survives a restart of the auth subgraph', async () => {
  const rotated = 'rotated-admin-password-2';
  await changePassword(stack.admin.password, rotated);

  await restartAuth();

  expect((await signIn(rotated)).data?.login.user.role).toBe('ADMIN');
  expect(codes(await signIn(stack.admin.password))).toEqual(['UNAUTHENTICATED']);
  // Put the configured password back for the tests below.
  await changePassword(rotated, stack.admin.password);
});

test('the auth subgraph starts when the admin account was re-created, and the new account is the ADMIN', async () => {
  const old: Session = await adminSession(stack);
  await deleteAdminAccount();

  await expect(restartAuth()).resolves.toBeUndefined();

  const fresh = await login(stack, stack.admin.email, stack.admin.password);
  expect(fresh.userId).not.toBe(old.userId);
  expect((await gql('{ me { id email role } }', {}, fresh.token)).data?.me).toEqual({ id: fresh.userId, email: stack.admin.email, role: 'ADMIN' });
  expect((await gql('mutation { createTenant(name: "After re-creation") { id } }', {}, fresh.token)).errors).toBeUndefined();
  // The deleted account's token has not expired yet, but its row is retired: no longer an ADMIN.
  expect(codes(await gql('mutation { createTenant(name: "By the old admin") { id } }', {}, old.token))).toEqual(['FORBIDDEN']);
});

test("a stranger's unconfirmed registration of the admin's address is replaced at start", async () => {
  await deleteAdminAccount();
  const squatted = await gql('mutation($e: String!) { register(email: $e, password: "squatter-password-1") { id } }', { e: stack.admin.email });
  expect(squatted.errors).toBeUndefined();

  await restartAuth();

  expect(codes(await signIn('squatter-password-1'))).toEqual(['UNAUTHENTICATED']);
  const admin = (await signIn(stack.admin.password)).data?.login.user;
  expect(admin.role).toBe('ADMIN');
  expect(admin.id).not.toBe(squatted.data?.register.id);
});

test('another checkout (its own pool, the same database) and back: each start makes its own pool\'s account the ADMIN', async () => {
  const here = await adminSession(stack);
  const created = await sdk.send(new CreateUserPoolCommand({ PoolName: 'second-checkout', Schema: CUSTOM_ATTRIBUTES, ...POOL_SETTINGS }));
  const userPoolId = created.UserPool?.Id as string;
  const elsewhere = new UserPool({ region: stack.cognito.region, userPoolId, clientId: await createAppClient(sdk, userPoolId), endpoint: stack.cognito.endpoint });
  try {
    await restartAuth(elsewhere);
    // That checkout's admin is the ADMIN now; this pool's account was retired...
    expect(codes(await gql('mutation { createTenant(name: "Meanwhile") { id } }', {}, here.token))).toEqual(['FORBIDDEN']);
    // ...until this checkout starts again and links it back.
    await restartAuth();
  } finally {
    elsewhere.destroy();
  }
  const tenant = await gql('mutation { createTenant(name: "Back home") { id } }', {}, here.token);
  expect(tenant.errors).toBeUndefined();
  // The address is this account's again (not a retired row's): the platform knows it as the ADMIN.
  const add = await gql('mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id } }', { t: tenant.data?.createTenant.id, e: stack.admin.email }, here.token);
  expect(codes(add)).toEqual(['BAD_USER_INPUT']);
  const back = await login(stack, stack.admin.email, stack.admin.password);
  expect(back.userId).toBe(here.userId);
  expect((await gql('{ me { role } }', {}, back.token)).data?.me.role).toBe('ADMIN');
});
