import { randomUUID } from 'node:crypto';
import {
  AdminCreateUserCommand,
  AdminDeleteUserCommand,
  AdminSetUserPasswordCommand,
  AdminUpdateUserAttributesCommand,
  type CognitoIdentityProviderClient,
} from '@aws-sdk/client-cognito-identity-provider';
import { adminSession, codes, createTenant, graphql, login, memberOf, registerConfirmed, registerDevice, type Session } from '../support/client';
import { mailTo, verificationCode } from '../support/mailbox';
import { startTestStack, type TestStack } from '../support/stack';
import { cognitoAdmin } from '../support/tokens';

/**
 * Membership by email reaches the mailbox's owner (registration is confirmed with the code the pool
 * emails), and a Cognito account re-created under the same email is a new person who inherits
 * nothing. Codes are read from cognito-local's mailbox, as the owner reads their inbox.
 */
let stack: TestStack;
let admin: Session;
let tenantId: string;
let sdk: CognitoIdentityProviderClient;

beforeAll(async () => {
  stack = await startTestStack({ minIntervalMs: 0 });
  admin = await adminSession(stack);
  tenantId = await createTenant(stack, admin, `Registration ${randomUUID().slice(0, 6)}`);
  sdk = cognitoAdmin(stack);
});
afterAll(async () => {
  sdk?.destroy();
  await stack?.stop();
});

const gql = (query: string, variables: Record<string, unknown> = {}, token?: string) => graphql(stack.gatewayUrl, query, variables, { token });
const address = (label: string) => `${label}-${randomUUID().slice(0, 8)}@fleet.test`;
const PASSWORD = 'member-password-1';

const register = (email: string, password = PASSWORD) => gql('mutation($e: String!, $p: String!) { register(email: $e, password: $p) { id } }', { e: email, p: password });
const confirm = (email: string, code: string) =>
  gql('mutation($e: String!, $c: String!) { confirmRegistration(email: $e, code: $c) { id email role tenant { id } } }', { e: email, c: code });
const resend = (email: string) => gql('mutation($e: String!) { resendConfirmationCode(email: $e) }', { e: email });
const signIn = (email: string, password = PASSWORD) =>
  gql('mutation($e: String!, $p: String!) { login(email: $e, password: $p) { idToken user { id role tenant { id } } } }', { e: email, p: password });
const addMember = (email: string) => gql('mutation($t: ID!, $e: String!) { addTenantMember(tenantId: $t, email: $e) { id tenant { id } } }', { t: tenantId, e: email }, admin.token);
const myTenant = async (token: string) => (await gql('{ me { tenant { id } } }', {}, token)).data?.me?.tenant ?? null;
const memberIds = async () =>
  ((await gql('query($t: ID!) { tenant(id: $t) { members { id } } }', { t: tenantId }, admin.token)).data?.tenant.members as Array<{ id: string }>).map((m) => m.id);

describe('registration is confirmed by the mailbox owner', () => {
  test('an unconfirmed registration cannot sign in or join a tenant; the emailed code confirms it', async () => {
    const email = address('pending');
    const registered = await register(email);
    expect(registered.errors).toBeUndefined();
    expect(mailTo(email)).toHaveLength(1);

    const early = await signIn(email);
    expect(codes(early)).toEqual(['UNAUTHENTICATED']);
    expect(early.errors?.[0]?.message).toMatch(/confirm/i);
    // A wrong password says nothing about the account's state.
    const wrong = await signIn(email, 'wrong-password-1');
    const unknown = await signIn(address('nobody'), 'wrong-password-1');
    expect(codes(wrong)).toEqual(['UNAUTHENTICATED']);
    expect(wrong.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
    const unknownUser = await addMember(address('ghost'));
    const notYet = await addMember(email);
    expect(codes(notYet)).toEqual(['NOT_FOUND']);
    expect(notYet.errors?.[0]?.message).toBe(unknownUser.errors?.[0]?.message);

    const code = verificationCode(email);
    const bad = await confirm(email, code === '000000' ? '000001' : '000000');
    expect(codes(bad)).toEqual(['BAD_USER_INPUT']);
    expect(bad.errors?.[0]?.extensions?.field).toBe('code');
    const confirmed = await confirm(email, code);
    expect(confirmed.data?.confirmRegistration).toEqual({ id: registered.data?.register.id, email, role: 'MEMBER', tenant: null });

    expect((await signIn(email)).data?.login.user).toEqual({ id: registered.data?.register.id, role: 'MEMBER', tenant: null });
    expect((await addMember(email)).data?.addTenantMember).toEqual({ id: registered.data?.register.id, tenant: { id: tenantId } });
    expect((await signIn(email)).data?.login.user.tenant).toEqual({ id: tenantId });
  });

  test('a squatter cannot keep the owner out: registering again replaces a registration that is not confirmed', async () => {
    const email = address('owner');
    const squatter = await register(email, 'squatter-password-1');
    const owner = await register(email, 'owner-password-1');
    expect(owner.errors).toBeUndefined();
    expect(owner.data?.register.id).not.toBe(squatter.data?.register.id);
    expect(mailTo(email)).toHaveLength(2); // each registration mailed the owner, never the squatter

    expect((await confirm(email, verificationCode(email))).data?.confirmRegistration.id).toBe(owner.data?.register.id);
    expect(codes(await signIn(email, 'squatter-password-1'))).toEqual(['UNAUTHENTICATED']);
    expect((await signIn(email, 'owner-password-1')).data?.login.user.id).toBe(owner.data?.register.id);
    // Confirmed, the address is somebody's: nobody replaces it any more.
    const taken = await register(email, 'squatter-password-1');
    expect(codes(taken)).toEqual(['BAD_USER_INPUT']);
    expect(taken.errors?.[0]?.extensions?.field).toBe('email');
    expect((await signIn(email, 'owner-password-1')).data?.login.user.id).toBe(owner.data?.register.id);
  });

  test('confirmRegistration and resendConfirmationCode answer alike whether or not the address has an account', async () => {
    const pending = address('resend');
    await register(pending);
    const confirmedEmail = address('done');
    await registerConfirmed(stack, confirmedEmail, PASSWORD);

    const refusals = await Promise.all([confirm(pending, 'not-it'), confirm(address('nobody'), '123456'), confirm(confirmedEmail, verificationCode(confirmedEmail))]);
    for (const refusal of refusals) {
      expect(codes(refusal)).toEqual(['BAD_USER_INPUT']);
      expect(refusal.errors?.[0]?.extensions?.field).toBe('code');
      expect(refusal.errors?.[0]?.message).toBe(refusals[0]?.errors?.[0]?.message);
    }

    for (const email of [pending, address('nobody'), confirmedEmail]) expect((await resend(email)).data).toEqual({ resendConfirmationCode: true });
    expect(mailTo(pending)).toHaveLength(2);
    expect(mailTo(confirmedEmail)).toHaveLength(1);
    expect((await confirm(pending, verificationCode(pending))).errors).toBeUndefined();

    const malformed = await resend('not-an-email');
    expect(codes(malformed)).toEqual(['BAD_USER_INPUT']);
    expect(malformed.errors?.[0]?.extensions?.field).toBe('email');
    const blank = await confirm(pending, '   ');
    expect(blank.errors?.[0]?.extensions?.field).toBe('code');
  });

  test('addTenantMember does not place an account whose email is no longer verified', async () => {
    const member = await memberOf(stack, admin, null, 'unverified');
    // e.g. the address was changed and the new one not yet verified
    await sdk.send(
      new AdminUpdateUserAttributesCommand({
        UserPoolId: stack.cognito.userPoolId,
        Username: member.email,
        UserAttributes: [
          { Name: 'email', Value: member.email },
          { Name: 'email_verified', Value: 'false' },
        ],
      }),
    );
    const refused = await addMember(member.email);
    expect(codes(refused)).toEqual(['NOT_FOUND']);
    expect(refused.errors?.[0]?.message).toBe((await addMember(address('ghost'))).errors?.[0]?.message);
    expect(await memberIds()).not.toContain(member.userId);
  });
});

describe('a re-created Cognito account is a new person', () => {
  const deleteAccount = (email: string) => sdk.send(new AdminDeleteUserCommand({ UserPoolId: stack.cognito.userPoolId, Username: email }));

  test('deleted and registered again: register, confirm and login work, and no tenant of the old account comes along', async () => {
    const old = await memberOf(stack, admin, tenantId, 'again');
    expect(await memberIds()).toContain(old.userId);
    await deleteAccount(old.email);

    const registered = await register(old.email);
    expect(registered.errors).toBeUndefined();
    // Until the new person confirms, the address belongs to nobody the platform may place.
    expect(codes(await addMember(old.email))).toEqual(['NOT_FOUND']);
    const confirmed = await confirm(old.email, verificationCode(old.email));
    expect(confirmed.errors).toBeUndefined();
    expect(confirmed.data?.confirmRegistration).toEqual({ id: registered.data?.register.id, email: old.email, role: 'MEMBER', tenant: null });

    const fresh = await login(stack, old.email, PASSWORD);
    expect(fresh.userId).not.toBe(old.userId);
    expect(await myTenant(fresh.token)).toBeNull();
    expect(codes(await gql('mutation { registerDevice(name: "inherited?") { id } }', {}, fresh.token))).toEqual(['FORBIDDEN']);
    // The old identity (its token is still unexpired) holds nothing any more either.
    expect(await myTenant(old.token)).toBeNull();
    expect(codes(await gql('mutation { registerDevice(name: "ghost") { id } }', {}, old.token))).toEqual(['FORBIDDEN']);
    expect(await memberIds()).not.toContain(old.userId);

    // The new person can be placed like anyone else.
    expect((await addMember(old.email)).data?.addTenantMember).toEqual({ id: fresh.userId, tenant: { id: tenantId } });
    const member = await login(stack, old.email, PASSWORD);
    expect(await registerDevice(stack, member, 'van')).toEqual(expect.any(String));
  });

  test('an account re-created in the pool (e.g. a new pool) signs in, and is not placed as the old one', async () => {
    const old = await memberOf(stack, admin, tenantId, 'moved');
    await deleteAccount(old.email);
    await sdk.send(
      new AdminCreateUserCommand({
        UserPoolId: stack.cognito.userPoolId,
        Username: old.email,
        MessageAction: 'SUPPRESS',
        UserAttributes: [
          { Name: 'email', Value: old.email },
          { Name: 'email_verified', Value: 'true' },
        ],
      }),
    );
    await sdk.send(new AdminSetUserPasswordCommand({ UserPoolId: stack.cognito.userPoolId, Username: old.email, Password: PASSWORD, Permanent: true }));
    // The platform's row is the old account's: the new one (another sub) is not who was recorded.
    expect(codes(await addMember(old.email))).toEqual(['NOT_FOUND']);

    const signedIn = await signIn(old.email);
    expect(signedIn.errors).toBeUndefined();
    const user = signedIn.data?.login.user;
    expect(user).toEqual({ id: expect.any(String), role: 'MEMBER', tenant: null });
    expect(user.id).not.toBe(old.userId);
    expect(await myTenant(old.token)).toBeNull();
    expect(await memberIds()).not.toContain(old.userId);
  });
});
