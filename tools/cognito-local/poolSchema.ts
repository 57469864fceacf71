import type {
  CreateUserPoolCommandInput,
  ExplicitAuthFlowsType,
  SchemaAttributeType,
  UpdateUserPoolCommandInput,
  UserPoolType,
  VerifiedAttributeType,
} from '@aws-sdk/client-cognito-identity-provider';

/** What the platform needs of a user pool and its app client (same for real Cognito; see README). */
export const CUSTOM_ATTRIBUTES: SchemaAttributeType[] = ['tenant_id', 'role'].map((Name) => ({
  Name,
  AttributeDataType: 'String',
  Mutable: true,
  Required: false,
  DeveloperOnlyAttribute: false,
  StringAttributeConstraints: { MinLength: '0', MaxLength: '256' },
}));

/**
 * Self-registered users confirm their email with a code the pool sends to it (ConfirmSignUp), which
 * is what makes the address verified; tenant membership requires it.
 */
export const AUTO_VERIFIED_ATTRIBUTES: VerifiedAttributeType[] = ['email'];

/** CreateUserPool settings besides the schema: email is the username and is verified by a code. */
export const POOL_SETTINGS: Pick<CreateUserPoolCommandInput, 'UsernameAttributes' | 'AutoVerifiedAttributes' | 'MfaConfiguration'> = {
  UsernameAttributes: ['email'],
  AutoVerifiedAttributes: AUTO_VERIFIED_ATTRIBUTES,
  MfaConfiguration: 'OFF',
};

/**
 * What UpdateUserPool must send to repair a pool made before AUTO_VERIFIED_ATTRIBUTES (UpdateUserPool
 * resets what it is not given, and cannot change the username attributes).
 */
export function poolRepair(pool: UserPoolType | undefined): Pick<UpdateUserPoolCommandInput, 'AutoVerifiedAttributes' | 'MfaConfiguration'> | null {
  const have = pool?.AutoVerifiedAttributes ?? [];
  if (AUTO_VERIFIED_ATTRIBUTES.every((attribute) => have.includes(attribute))) return null;
  return { AutoVerifiedAttributes: AUTO_VERIFIED_ATTRIBUTES, MfaConfiguration: 'OFF' };
}

export const AUTH_FLOWS: ExplicitAuthFlowsType[] = ['ALLOW_USER_PASSWORD_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH'];

/** The app client's settings: no secret, password and refresh flows, lifetimes in seconds. */
export function appClientSettings(idTokenValiditySeconds: number) {
  return {
    ExplicitAuthFlows: AUTH_FLOWS,
    IdTokenValidity: idTokenValiditySeconds,
    AccessTokenValidity: idTokenValiditySeconds,
    RefreshTokenValidity: 30,
    TokenValidityUnits: { IdToken: 'seconds', AccessToken: 'seconds', RefreshToken: 'days' },
  } as const;
}

export const isNotFound = (error: unknown) => (error as { name?: string })?.name === 'ResourceNotFoundException';
