// The AWS SDK v3 warns once per process on Node < 22 (releases after January 2027 need Node 22).
// This variable silences exactly that warning (@aws-sdk/core emitWarningIfUnsupportedVersion) and no other.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AdminCreateUserCommand,
  AdminSetUserPasswordCommand,
  AdminUpdateUserAttributesCommand,
  AdminGetUserCommand,
  CognitoIdentityProviderClient,
  ConfirmSignUpCommand,
  DescribeUserPoolClientCommand,
  DescribeUserPoolCommand,
  InitiateAuthCommand,
  ResendConfirmationCodeCommand,
  SignUpCommand,
  UpdateUserPoolCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { CognitoJwtVerifier, JwtRsaVerifier } from 'aws-jwt-verify';
import { JwtExpiredError, JwtInvalidAudienceError, JwtInvalidClaimError, JwtInvalidIssuerError } from 'aws-jwt-verify/error';
import type { Fetcher } from 'aws-jwt-verify/https';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import type { Jwks } from 'aws-jwt-verify/jwk';
import type { JwtPayload } from 'aws-jwt-verify/jwt-model';
import { startCognitoLocal, type CognitoLocal, type Mail } from '../../tools/cognito-local/index';
import { initPool } from '../../tools/cognito-local/init-pool';

function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, any> } {
  const [header, payload] = token.split('.');
  const part = (s: string | undefined) => JSON.parse(Buffer.from(s ?? '', 'base64url').toString('utf8'));
  return { header: part(header), payload: part(payload) };
}

/**
 * Child processes of this process that run cognito-local, other than those in `except`. (Run in
 * band, jest's globalSetup shares this process, and its cognito-local is a child too.)
 */
function cognitoLocalChildren(except: string[] = []): string[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch {
    // ps exits 1 when there is no child at all
  }
  return out.split('\n').filter((line) => line.includes('cognito-local/lib/bin/start.js') && !except.includes(line));
}

function portAcceptsConnections(endpoint: string): Promise<boolean> {
  const { hostname, port } = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * aws-jwt-verify's default fetcher speaks https only. This one uses Node's fetch, so it reads the
 * emulator's http JWKS too (and real Cognito's https JWKS just as well).
 */
const anyProtocolFetcher: Fetcher = {
  async fetch(uri) {
    const response = await fetch(uri, { signal: AbortSignal.timeout(3000) });
    if (!response.ok) throw new Error(`GET ${uri}: ${response.status}`);
    return response.arrayBuffer();
  },
};

/**
 * The verifier that works for real Cognito and for cognito-local alike: a JwtRsaVerifier given the
 * issuer, audience and JWKS URI explicitly, plus the `token_use` check CognitoJwtVerifier would do.
 * Real Cognito: issuer `https://cognito-idp.<region>.amazonaws.com/<poolId>`, jwksUri `${issuer}/.well-known/jwks.json`.
 */
function idTokenVerifier(issuer: string, clientId: string, jwksUri: string, jwksCache?: SimpleJwksCache) {
  return JwtRsaVerifier.create(
    {
      issuer,
      audience: clientId,
      jwksUri,
      customJwtCheck: ({ payload }: { payload: JwtPayload }) => {
        if (payload.token_use !== 'id') throw new Error(`token_use is ${String(payload.token_use)}, expected id`);
      },
    },
    jwksCache ? { jwksCache } : undefined,
  );
}

describe('cognito-local', () => {
  let cognito: CognitoLocal;
  let sdk: CognitoIdentityProviderClient;
  const email = 'alice@example.com';
  const password = 'correct horse battery staple';
  let idToken: string;
  let refreshToken: string;

  beforeAll(async () => {
    cognito = await startCognitoLocal();
    sdk = new CognitoIdentityProviderClient({
      endpoint: cognito.endpoint,
      region: cognito.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await sdk.send(
      new AdminCreateUserCommand({
        UserPoolId: cognito.userPoolId,
        Username: email,
        MessageAction: 'SUPPRESS',
        UserAttributes: [
          { Name: 'email', Value: email },
          { Name: 'email_verified', Value: 'true' },
        ],
      }),
    );
    await sdk.send(
      new AdminSetUserPasswordCommand({ UserPoolId: cognito.userPoolId, Username: email, Password: password, Permanent: true }),
    );
  });

  afterAll(async () => {
    sdk?.destroy();
    await cognito?.stop();
  });

  const login = async (clientId = cognito.clientId, username = email, pw = password) =>
    sdk.send(
      new InitiateAuthCommand({
        ClientId: clientId,
        AuthFlow: 'USER_PASSWORD_AUTH',
        AuthParameters: { USERNAME: username, PASSWORD: pw },
      }),
    );

  test('creates the pool with the custom attributes and the app client as asked', async () => {
    const { UserPool } = await sdk.send(new DescribeUserPoolCommand({ UserPoolId: cognito.userPoolId }));
    for (const name of ['custom:tenant_id', 'custom:role']) {
      expect(UserPool?.SchemaAttributes).toContainEqual(
        expect.objectContaining({ Name: name, AttributeDataType: 'String', Mutable: true }),
      );
    }
    expect(UserPool?.UsernameAttributes).toEqual(['email']);
    expect(UserPool?.AutoVerifiedAttributes).toEqual(['email']); // SignUp mails a code; ConfirmSignUp verifies

    const { UserPoolClient } = await sdk.send(
      new DescribeUserPoolClientCommand({ UserPoolId: cognito.userPoolId, ClientId: cognito.clientId }),
    );
    expect(UserPoolClient?.ClientSecret).toBeUndefined();
    expect(UserPoolClient?.ExplicitAuthFlows).toEqual(['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']);
    expect(UserPoolClient?.IdTokenValidity).toBe(3600);
    expect(UserPoolClient?.TokenValidityUnits?.IdToken).toBe('seconds');

    // The schema is enforced: an attribute outside it is refused.
    await expect(
      sdk.send(
        new AdminUpdateUserAttributesCommand({
          UserPoolId: cognito.userPoolId,
          Username: email,
          UserAttributes: [{ Name: 'custom:nope', Value: 'x' }],
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });

  test('USER_PASSWORD_AUTH returns an ID token with the expected claims', async () => {
    const out = await login();
    const result = out.AuthenticationResult!;
    idToken = result.IdToken!;
    refreshToken = result.RefreshToken!;
    expect(idToken).toEqual(expect.any(String));
    expect(refreshToken).toEqual(expect.any(String));
    expect(result.ExpiresIn).toBeUndefined(); // real Cognito sets it; derive the lifetime from `exp`

    const { header, payload } = decodeJwt(idToken);
    expect(header).toMatchObject({ alg: 'RS256', kid: 'CognitoLocal' });
    expect(payload.iss).toBe(cognito.issuer);
    expect(cognito.issuer).toBe(`${cognito.endpoint}/${cognito.userPoolId}`);
    expect(cognito.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/local_[A-Za-z0-9]+$/);
    expect(payload.aud).toBe(cognito.clientId);
    expect(payload.token_use).toBe('id');
    expect(payload.email).toBe(email);
    expect(payload.email_verified).toBe(true);
    expect(payload['cognito:username']).toBe(payload.sub); // email is an alias; the username is the sub, as in Cognito
    expect(payload.exp - payload.iat).toBe(3600);
    expect(payload['custom:tenant_id']).toBeUndefined();

    const access = decodeJwt(result.AccessToken!).payload;
    expect(access).toMatchObject({ token_use: 'access', client_id: cognito.clientId, iss: cognito.issuer });
    expect(access.aud).toBeUndefined();
  });

  test('REFRESH_TOKEN_AUTH returns an ID token with attributes changed since login', async () => {
    await sdk.send(
      new AdminUpdateUserAttributesCommand({
        UserPoolId: cognito.userPoolId,
        Username: email,
        UserAttributes: [
          { Name: 'custom:tenant_id', Value: 'tenant-42' },
          { Name: 'custom:role', Value: 'admin' },
        ],
      }),
    );
    const out = await sdk.send(
      new InitiateAuthCommand({
        ClientId: cognito.clientId,
        AuthFlow: 'REFRESH_TOKEN_AUTH',
        AuthParameters: { REFRESH_TOKEN: refreshToken },
      }),
    );
    expect(out.AuthenticationResult?.RefreshToken).toBeUndefined(); // as in Cognito: the refresh token is kept
    const { payload } = decodeJwt(out.AuthenticationResult!.IdToken!);
    expect(payload['custom:tenant_id']).toBe('tenant-42');
    expect(payload['custom:role']).toBe('admin');
    expect(payload.iss).toBe(cognito.issuer);
  });

  test('the JWKS at jwksUri holds the key the token names', async () => {
    const response = await fetch(cognito.jwksUri);
    expect(response.status).toBe(200);
    const jwks = (await response.json()) as Jwks;
    const kid = decodeJwt(idToken).header.kid;
    expect(jwks.keys.map((k) => k.kid)).toContain(kid);
  });

  test('an app client with a 5 s ID-token validity issues tokens that live 5 s', async () => {
    const shortClientId = await cognito.createAppClient({ name: 'short-lived', idTokenValiditySeconds: 5 });
    expect(shortClientId).not.toBe(cognito.clientId);
    const out = await login(shortClientId);
    const { payload } = decodeJwt(out.AuthenticationResult!.IdToken!);
    expect(payload.exp - payload.iat).toBe(5);
    expect(payload.aud).toBe(shortClientId);
  });

  describe('aws-jwt-verify', () => {
    let jwks: Jwks;
    beforeAll(async () => {
      jwks = (await (await fetch(cognito.jwksUri)).json()) as Jwks;
    });

    test('CognitoJwtVerifier cannot be used: it refuses the emulator pool id and derives an AWS issuer', () => {
      expect(() => CognitoJwtVerifier.create({ userPoolId: cognito.userPoolId, clientId: cognito.clientId, tokenUse: 'id' })).toThrow(
        /Invalid Cognito User Pool ID/,
      );
    });

    test('JwtRsaVerifier with explicit issuer/audience and a JWKS handed over with cacheJwks', async () => {
      const verifier = idTokenVerifier(cognito.issuer, cognito.clientId, cognito.jwksUri);
      verifier.cacheJwks(jwks);
      const payload = await verifier.verify(idToken);
      expect(payload).toMatchObject({ iss: cognito.issuer, aud: cognito.clientId, email });
      expect(verifier.verifySync(idToken)).toMatchObject({ email });
    });

    test('JwtRsaVerifier with a fetcher that reads http JWKS (no cacheJwks needed)', async () => {
      const verifier = idTokenVerifier(
        cognito.issuer,
        cognito.clientId,
        cognito.jwksUri,
        new SimpleJwksCache({ fetcher: anyProtocolFetcher }),
      );
      await expect(verifier.verify(idToken)).resolves.toMatchObject({ email });
    });

    test('the default https-only fetcher cannot load the emulator JWKS', async () => {
      const verifier = idTokenVerifier(cognito.issuer, cognito.clientId, cognito.jwksUri);
      await expect(verifier.verify(idToken)).rejects.toThrow(/http:/);
    });

    test('rejects access tokens, other audiences, other pools and expired tokens', async () => {
      const verifier = idTokenVerifier(cognito.issuer, cognito.clientId, cognito.jwksUri);
      verifier.cacheJwks(jwks);

      const first = (await login()).AuthenticationResult!;
      await expect(verifier.verify(first.AccessToken!)).rejects.toThrow(/audience|token_use/i);

      const otherClientId = await cognito.createAppClient({ name: 'other-audience' });
      const otherAudience = (await login(otherClientId)).AuthenticationResult!.IdToken!;
      await expect(verifier.verify(otherAudience)).rejects.toBeInstanceOf(JwtInvalidAudienceError);

      // Same signing key for every pool: only the issuer check keeps another pool's tokens out.
      const other = await cognito.createUserPool('other-pool');
      await sdk.send(
        new AdminCreateUserCommand({
          UserPoolId: other.userPoolId,
          Username: email,
          MessageAction: 'SUPPRESS',
          UserAttributes: [{ Name: 'email', Value: email }],
        }),
      );
      await sdk.send(
        new AdminSetUserPasswordCommand({ UserPoolId: other.userPoolId, Username: email, Password: password, Permanent: true }),
      );
      const otherPoolToken = (await login(other.clientId)).AuthenticationResult!.IdToken!;
      expect(decodeJwt(otherPoolToken).payload.iss).toBe(`${cognito.endpoint}/${other.userPoolId}`);
      await expect(verifier.verify(otherPoolToken)).rejects.toBeInstanceOf(JwtInvalidIssuerError);

      const shortClientId = await cognito.createAppClient({ name: 'expiring', idTokenValiditySeconds: 5 });
      const shortToken = (await login(shortClientId)).AuthenticationResult!.IdToken!;
      const shortVerifier = idTokenVerifier(cognito.issuer, shortClientId, cognito.jwksUri);
      shortVerifier.cacheJwks(jwks);
      await expect(shortVerifier.verify(shortToken)).resolves.toBeDefined();
      const { exp } = decodeJwt(shortToken).payload;
      const now = jest.spyOn(Date, 'now').mockReturnValue((exp + 1) * 1000);
      try {
        await expect(shortVerifier.verify(shortToken)).rejects.toBeInstanceOf(JwtExpiredError);
      } finally {
        now.mockRestore();
      }
      expect(JwtExpiredError.prototype).toBeInstanceOf(JwtInvalidClaimError);
    });
  });

  test('SignUp mails a code: in the mailbox before SignUp answers, announced by onMail; ResendConfirmationCode mails another', async () => {
    const address = 'carol@example.com';
    const mailbox = (to: string) =>
      readFileSync(cognito.mailbox, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Mail).filter((mail) => mail.to === to);
    const announced = new Promise<Mail>((resolve) => {
      const stop = cognito.onMail((mail) => {
        if (mail.to !== address) return;
        stop();
        resolve(mail);
      });
    });
    const signUp = await sdk.send(new SignUpCommand({ ClientId: cognito.clientId, Username: address, Password: password, UserAttributes: [{ Name: 'email', Value: address }] }));
    expect(signUp).toMatchObject({ UserConfirmed: false, CodeDeliveryDetails: { DeliveryMedium: 'EMAIL', Destination: address } });
    const [first] = mailbox(address);
    expect(first).toMatchObject({ to: address, code: expect.stringMatching(/^\d{6}$/), username: signUp.UserSub });
    expect(await announced).toEqual(first);
    await expect(login(cognito.clientId, address, password)).rejects.toMatchObject({ name: 'UserNotConfirmedException' });

    const resent = await sdk.send(new ResendConfirmationCodeCommand({ ClientId: cognito.clientId, Username: address }));
    expect(resent.CodeDeliveryDetails).toMatchObject({ DeliveryMedium: 'EMAIL', Destination: address });
    const codes = mailbox(address).map((mail) => mail.code);
    expect(codes).toHaveLength(2);
    await sdk.send(new ConfirmSignUpCommand({ ClientId: cognito.clientId, Username: address, ConfirmationCode: codes[1] }));
    const user = await sdk.send(new AdminGetUserCommand({ UserPoolId: cognito.userPoolId, Username: address }));
    expect(user.UserStatus).toBe('CONFIRMED');
    // Unlike real Cognito, cognito-local leaves email_verified unset on confirmation (the platform sets it).
    expect(user.UserAttributes?.find((a) => a.Name === 'email_verified')).toBeUndefined();
    await expect(login(cognito.clientId, address, password)).resolves.toBeDefined();

    // As real Cognito answers: a confirmed user or an unknown one gets no code.
    await expect(sdk.send(new ResendConfirmationCodeCommand({ ClientId: cognito.clientId, Username: address }))).rejects.toMatchObject({ name: 'InvalidParameterException' });
    await expect(sdk.send(new ResendConfirmationCodeCommand({ ClientId: cognito.clientId, Username: 'nobody@example.com' }))).rejects.toMatchObject({ name: 'UserNotFoundException' });
    expect(mailbox(address)).toHaveLength(2);
  });

  test('error names for a wrong password, an unknown user and a duplicate SignUp', async () => {
    // Real Cognito: NotAuthorizedException "Incorrect username or password." for the first two.
    await expect(login(cognito.clientId, email, 'wrong')).rejects.toMatchObject({
      name: 'InvalidPasswordException',
      message: 'Invalid password',
    });
    await expect(login(cognito.clientId, 'nobody@example.com', password)).rejects.toMatchObject({
      name: 'NotAuthorizedException',
      message: 'User not authorized',
    });
    await expect(login('no-such-client', email, password)).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    await expect(
      sdk.send(new SignUpCommand({ ClientId: cognito.clientId, Username: email, Password: password })),
    ).rejects.toMatchObject({ name: 'UsernameExistsException', message: 'User already exists' });
  });
});

describe('cognito-local with a dataDir', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cognito-local-test-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('keeps the pool, client and users across restarts; stop() leaves no process', async () => {
    const others = cognitoLocalChildren();
    const first = await startCognitoLocal({ dataDir, idTokenValiditySeconds: 600 });
    expect(cognitoLocalChildren(others)).toHaveLength(1);
    const sdk = new CognitoIdentityProviderClient({
      endpoint: first.endpoint,
      region: first.region,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await sdk.send(
      new AdminCreateUserCommand({
        UserPoolId: first.userPoolId,
        Username: 'bob@example.com',
        MessageAction: 'SUPPRESS',
        UserAttributes: [{ Name: 'email', Value: 'bob@example.com' }],
      }),
    );
    await sdk.send(
      new AdminSetUserPasswordCommand({ UserPoolId: first.userPoolId, Username: 'bob@example.com', Password: 'pw', Permanent: true }),
    );
    // A pool made before codes were mailed (UpdateUserPool resets what it is not given).
    await sdk.send(new UpdateUserPoolCommand({ UserPoolId: first.userPoolId, MfaConfiguration: 'OFF' }));
    expect((await sdk.send(new DescribeUserPoolCommand({ UserPoolId: first.userPoolId }))).UserPool?.AutoVerifiedAttributes).toBeUndefined();
    expect(first.mailbox).toBe(path.join(dataDir, 'mailbox.jsonl'));
    sdk.destroy();
    await first.stop();
    await first.stop(); // idempotent
    expect(cognitoLocalChildren(others)).toHaveLength(0);
    expect(await portAcceptsConnections(first.endpoint)).toBe(false);

    const second = await startCognitoLocal({ dataDir, idTokenValiditySeconds: 900 });
    try {
      expect(second.userPoolId).toBe(first.userPoolId);
      expect(second.clientId).toBe(first.clientId);
      const sdk2 = new CognitoIdentityProviderClient({
        endpoint: second.endpoint,
        region: second.region,
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      });
      const out = await sdk2.send(
        new InitiateAuthCommand({
          ClientId: second.clientId,
          AuthFlow: 'USER_PASSWORD_AUTH',
          AuthParameters: { USERNAME: 'bob@example.com', PASSWORD: 'pw' },
        }),
      );
      const repaired = await sdk2.send(new DescribeUserPoolCommand({ UserPoolId: second.userPoolId }));
      expect(repaired.UserPool?.AutoVerifiedAttributes).toEqual(['email']);
      expect(repaired.UserPool?.UsernameAttributes).toEqual(['email']);
      sdk2.destroy();
      const { payload } = decodeJwt(out.AuthenticationResult!.IdToken!);
      expect(payload.iss).toBe(second.issuer);
      expect(payload.exp - payload.iat).toBe(900); // a changed validity is applied to the kept client
    } finally {
      await second.stop();
    }
    expect(cognitoLocalChildren(others)).toHaveLength(0);
  });
});

describe('cognito-init (tools/cognito-local/init-pool.ts): pool settings', () => {
  let cognito: CognitoLocal;
  let sdk: CognitoIdentityProviderClient;
  beforeAll(async () => {
    cognito = await startCognitoLocal();
    sdk = new CognitoIdentityProviderClient({ endpoint: cognito.endpoint, region: cognito.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  });
  afterAll(async () => {
    sdk?.destroy();
    await cognito?.stop();
  });

  test('creates the pool with email verified by a code, and repairs a pool made before that', async () => {
    const created = await initPool({ endpoint: cognito.endpoint, poolName: 'init-verified' });
    const described = async () => (await sdk.send(new DescribeUserPoolCommand({ UserPoolId: created.userPoolId }))).UserPool;
    expect((await described())?.AutoVerifiedAttributes).toEqual(['email']);
    await sdk.send(new UpdateUserPoolCommand({ UserPoolId: created.userPoolId, MfaConfiguration: 'OFF' }));
    expect((await described())?.AutoVerifiedAttributes).toBeUndefined();
    const again = await initPool({ endpoint: cognito.endpoint, poolName: 'init-verified', previous: created });
    expect(again).toMatchObject({ userPoolId: created.userPoolId, created: { pool: false, client: false } });
    expect((await described())?.AutoVerifiedAttributes).toEqual(['email']);
  });
});
