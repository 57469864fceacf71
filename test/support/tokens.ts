import { readFileSync } from 'node:fs';
import { createPrivateKey, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolClientCommand,
  CreateUserPoolCommand,
  InitiateAuthCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import type { TestStack } from './stack';

/**
 * Token-minting helpers for authentication tests. cognito-local signs every token of every pool
 * with one private key shipped in its npm package (kid "CognitoLocal"), so tests can mint tokens
 * the gateway must accept, and tokens that are wrong in exactly one way.
 */
export const COGNITO_LOCAL_KID = 'CognitoLocal';

/** The emulator's own signing key (development and tests only). */
let emulatorKey: KeyObject | undefined;
export function cognitoLocalKey(): KeyObject {
  if (emulatorKey) return emulatorKey;
  const file = require.resolve('cognito-local/lib/keys/cognitoLocal.private.json');
  emulatorKey = createPrivateKey((JSON.parse(readFileSync(file, 'utf8')) as { pem: string }).pem);
  return emulatorKey;
}

/** A fresh RSA key nobody publishes. */
export function strangerKey(): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * A JWT over `claims` with `header` merged over { alg: RS256, typ, kid: CognitoLocal }, signed
 * RS256 with `key` (default: the emulator's). Header alg "none" without a key: empty signature.
 */
export function mintJwt(claims: Record<string, unknown>, options: { key?: KeyObject; header?: Record<string, unknown> } = {}): string {
  const header = { alg: 'RS256', typ: 'JWT', kid: COGNITO_LOCAL_KID, ...options.header };
  const signingInput = `${b64(header)}.${b64(claims)}`;
  if (header.alg === 'none' && !options.key) return `${signingInput}.`;
  const signature = sign('sha256', Buffer.from(signingInput), options.key ?? cognitoLocalKey());
  return `${signingInput}.${signature.toString('base64url')}`;
}

/** Claims of an ID token the stack's gateway accepts for this user, with `overrides` on top. */
export function idTokenClaims(stack: TestStack, user: { userId: string; email: string }, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: user.userId,
    email: user.email,
    email_verified: true,
    'cognito:username': user.email,
    aud: stack.cognito.clientId,
    iss: stack.cognito.issuer,
    token_use: 'id',
    auth_time: now,
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
    ...overrides,
  };
}

/** An AWS SDK client for the stack's emulator (it checks no credentials). */
export function cognitoAdmin(stack: TestStack): CognitoIdentityProviderClient {
  return new CognitoIdentityProviderClient({
    endpoint: stack.cognito.endpoint,
    region: stack.cognito.region,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
}

/** A new app client of `userPoolId` that allows password sign-in; ID tokens live `idTokenSeconds`. */
export async function createAppClient(sdk: CognitoIdentityProviderClient, userPoolId: string, idTokenSeconds = 3600): Promise<string> {
  const out = await sdk.send(
    new CreateUserPoolClientCommand({
      UserPoolId: userPoolId,
      ClientName: `jwt-test-${randomUUID().slice(0, 8)}`,
      GenerateSecret: false,
      ExplicitAuthFlows: ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'],
      IdTokenValidity: idTokenSeconds,
      AccessTokenValidity: idTokenSeconds,
      TokenValidityUnits: { IdToken: 'seconds', AccessToken: 'seconds' },
    }),
  );
  if (!out.UserPoolClient?.ClientId) throw new Error('CreateUserPoolClient returned no client id');
  return out.UserPoolClient.ClientId;
}

/** Real tokens from the emulator: USER_PASSWORD_AUTH against `clientId`. */
export async function signIn(sdk: CognitoIdentityProviderClient, clientId: string, email: string, password: string) {
  const out = await sdk.send(
    new InitiateAuthCommand({ ClientId: clientId, AuthFlow: 'USER_PASSWORD_AUTH', AuthParameters: { USERNAME: email, PASSWORD: password } }),
  );
  const result = out.AuthenticationResult;
  if (!result?.IdToken || !result.AccessToken) throw new Error('InitiateAuth returned no tokens');
  return { idToken: result.IdToken, accessToken: result.AccessToken };
}

/** Another user pool on the same emulator, with one app client and one user who can sign in. */
export async function otherPoolUser(sdk: CognitoIdentityProviderClient): Promise<{ userPoolId: string; clientId: string; email: string; password: string }> {
  const pool = await sdk.send(new CreateUserPoolCommand({ PoolName: `jwt-other-${randomUUID().slice(0, 8)}`, UsernameAttributes: ['email'] }));
  const userPoolId = pool.UserPool?.Id;
  if (!userPoolId) throw new Error('CreateUserPool returned no pool id');
  const clientId = await createAppClient(sdk, userPoolId);
  const email = `other-${randomUUID().slice(0, 8)}@fleet.test`;
  const password = 'other-password-1';
  await sdk.send(
    new AdminCreateUserCommand({ UserPoolId: userPoolId, Username: email, MessageAction: 'SUPPRESS', UserAttributes: [{ Name: 'email', Value: email }] }),
  );
  await sdk.send(new AdminSetUserPasswordCommand({ UserPoolId: userPoolId, Username: email, Password: password, Permanent: true }));
  return { userPoolId, clientId, email, password };
}

/** The claims of a JWT, unverified (for tests that need a real token's `exp`). */
export function decodeClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}
