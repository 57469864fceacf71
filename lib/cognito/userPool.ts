import {
  AdminCreateUserCommand,
  AdminDeleteUserCommand,
  AdminGetUserCommand,
  AdminSetUserPasswordCommand,
  AdminUpdateUserAttributesCommand,
  CognitoIdentityProviderClient,
  ConfirmSignUpCommand,
  InitiateAuthCommand,
  ResendConfirmationCodeCommand,
  SignUpCommand,
  type AuthenticationResultType,
  type UserStatusType,
} from '@aws-sdk/client-cognito-identity-provider';

/**
 * The Cognito user pool, as the platform uses it. The same code talks to real Cognito (endpoint
 * unset: the SDK's regional endpoint and credential chain) and to cognito-local (endpoint set:
 * the emulator accepts any credentials, so static dummy ones keep the SDK from searching).
 */
export interface UserPoolOptions {
  region: string;
  userPoolId: string;
  clientId: string;
  endpoint?: string;
}

export interface PoolTokens {
  idToken: string;
  accessToken: string;
  refreshToken: string | null;
  expiresIn: number;
  claims: IdTokenClaims;
}

export interface IdTokenClaims {
  sub: string;
  email: string;
  'custom:role'?: string;
  'custom:tenant_id'?: string;
  exp: number;
  [claim: string]: unknown;
}

/** A user of the pool as the admin API describes it. */
export interface PoolAccount {
  sub: string;
  email: string | null;
  /** UNCONFIRMED until the owner of the address entered the code sent to it; CONFIRMED after. */
  status: UserStatusType | string;
  emailVerified: boolean;
}

/** Reads the claims of a token that came straight from Cognito over our own connection. */
export function decodeIdToken(idToken: string): IdTokenClaims {
  const payload = idToken.split('.')[1];
  if (!payload) throw new Error('Cognito returned a malformed ID token');
  return JSON.parse(Buffer.from(payload, 'base64url').toString()) as IdTokenClaims;
}

export class UserPool {
  private readonly client: CognitoIdentityProviderClient;

  /** From the validated `cognitoEnv` part of a process's configuration. */
  static fromConfig(config: { AWS_REGION: string; COGNITO_USER_POOL_ID: string; COGNITO_CLIENT_ID: string; COGNITO_ENDPOINT?: string }): UserPool {
    return new UserPool({
      region: config.AWS_REGION,
      userPoolId: config.COGNITO_USER_POOL_ID,
      clientId: config.COGNITO_CLIENT_ID,
      endpoint: config.COGNITO_ENDPOINT,
    });
  }

  constructor(private readonly options: UserPoolOptions) {
    this.client = new CognitoIdentityProviderClient({
      region: options.region,
      ...(options.endpoint
        ? { endpoint: options.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
        : {}),
    });
  }

  /**
   * Starts a self-service registration: the account stays UNCONFIRMED and the pool sends a code to
   * the address (AutoVerifiedAttributes: email). Returns the new account's `sub`.
   */
  async signUp(email: string, password: string): Promise<string> {
    const result = await this.client.send(
      new SignUpCommand({
        ClientId: this.options.clientId,
        Username: email,
        Password: password,
        UserAttributes: [{ Name: 'email', Value: email }],
      }),
    );
    if (!result.UserSub) throw new Error('Cognito SignUp returned no UserSub');
    return result.UserSub;
  }

  /** Confirms a registration with the code the pool sent to the address. */
  async confirmSignUp(email: string, code: string): Promise<void> {
    await this.client.send(new ConfirmSignUpCommand({ ClientId: this.options.clientId, Username: email, ConfirmationCode: code }));
  }

  /** Sends an UNCONFIRMED account a new code. */
  async resendConfirmationCode(email: string): Promise<void> {
    await this.client.send(new ResendConfirmationCodeCommand({ ClientId: this.options.clientId, Username: email }));
  }

  async signIn(email: string, password: string): Promise<PoolTokens> {
    const result = await this.client.send(
      new InitiateAuthCommand({
        ClientId: this.options.clientId,
        AuthFlow: 'USER_PASSWORD_AUTH',
        AuthParameters: { USERNAME: email, PASSWORD: password },
      }),
    );
    return tokensFrom(result.AuthenticationResult);
  }

  async refresh(refreshToken: string): Promise<PoolTokens> {
    const result = await this.client.send(
      new InitiateAuthCommand({
        ClientId: this.options.clientId,
        AuthFlow: 'REFRESH_TOKEN_AUTH',
        AuthParameters: { REFRESH_TOKEN: refreshToken },
      }),
    );
    // Cognito does not rotate refresh tokens by default: the one the client holds stays valid.
    const tokens = tokensFrom(result.AuthenticationResult);
    return { ...tokens, refreshToken: tokens.refreshToken ?? refreshToken };
  }

  /** The account registered under this address, or null when the pool has none. */
  async findAccount(email: string): Promise<PoolAccount | null> {
    try {
      const user = await this.client.send(new AdminGetUserCommand({ UserPoolId: this.options.userPoolId, Username: email }));
      const attribute = (name: string) => user.UserAttributes?.find((a) => a.Name === name)?.Value;
      const sub = attribute('sub');
      if (!sub) throw new Error('Cognito AdminGetUser returned no sub');
      return { sub, email: attribute('email') ?? null, status: user.UserStatus ?? 'UNKNOWN', emailVerified: attribute('email_verified') === 'true' };
    } catch (error) {
      if (isCognitoError(error, 'UserNotFoundException')) return null;
      throw error;
    }
  }

  async deleteAccount(email: string): Promise<void> {
    try {
      await this.client.send(new AdminDeleteUserCommand({ UserPoolId: this.options.userPoolId, Username: email }));
    } catch (error) {
      if (!isCognitoError(error, 'UserNotFoundException')) throw error;
    }
  }

  /**
   * Makes sure the bootstrap ADMIN can sign in; returns its `sub`. An account that already works is
   * left alone, so a password rotated since the last start survives restarts.
   */
  async ensureAdmin(email: string, password: string): Promise<string> {
    let account = await this.findAccount(email);
    if (account?.status === 'UNCONFIRMED') {
      // Someone's unconfirmed self-registration of the admin's address proves nothing: replace it.
      await this.deleteAccount(email);
      account = null;
    }
    if (!account) {
      try {
        await this.client.send(
          new AdminCreateUserCommand({
            UserPoolId: this.options.userPoolId,
            Username: email,
            MessageAction: 'SUPPRESS',
            UserAttributes: [
              { Name: 'email', Value: email },
              { Name: 'email_verified', Value: 'true' },
              { Name: 'custom:role', Value: 'ADMIN' },
            ],
          }),
        );
      } catch (error) {
        // Another replica created it first.
        if (!isCognitoError(error, 'UsernameExistsException')) throw error;
      }
      account = await this.findAccount(email);
      if (!account) throw new Error('the ADMIN user could not be created in Cognito');
    }
    // Created without a password (just now, or by a start that died before setting it): finish it.
    if (account.status === 'FORCE_CHANGE_PASSWORD') {
      await this.client.send(
        new AdminSetUserPasswordCommand({ UserPoolId: this.options.userPoolId, Username: email, Password: password, Permanent: true }),
      );
    }
    return account.sub;
  }

  /**
   * Marks the address verified. Real Cognito does this itself on ConfirmSignUp when the pool
   * auto-verifies email; cognito-local 5.3.0 does not (and wants `email` in the same call).
   */
  async markEmailVerified(email: string): Promise<void> {
    await this.setAttributes(email, { email, email_verified: 'true' });
  }

  /** Sets the tenant (and role) the user's next ID token carries. */
  async setAttributes(email: string, attributes: Record<string, string>): Promise<void> {
    await this.client.send(
      new AdminUpdateUserAttributesCommand({
        UserPoolId: this.options.userPoolId,
        Username: email,
        UserAttributes: Object.entries(attributes).map(([Name, Value]) => ({ Name, Value })),
      }),
    );
  }

  destroy(): void {
    this.client.destroy();
  }
}

function tokensFrom(result: AuthenticationResultType | undefined): PoolTokens {
  if (!result?.IdToken || !result.AccessToken) throw new Error('Cognito returned no tokens');
  const claims = decodeIdToken(result.IdToken);
  // cognito-local omits ExpiresIn; the ID token's own `exp` is the truth either way.
  const expiresIn = result.ExpiresIn ?? Math.max(0, claims.exp - Math.floor(Date.now() / 1000));
  return {
    idToken: result.IdToken,
    accessToken: result.AccessToken,
    refreshToken: result.RefreshToken ?? null,
    expiresIn,
    claims,
  };
}

export function isCognitoError(error: unknown, ...names: string[]): boolean {
  return error instanceof Error && names.includes(error.name);
}
