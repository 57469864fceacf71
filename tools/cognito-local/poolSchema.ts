import type { ExplicitAuthFlowsType, SchemaAttributeType } from '@aws-sdk/client-cognito-identity-provider';

/** What the platform needs of a user pool and its app client (same for real Cognito; see README). */
export const CUSTOM_ATTRIBUTES: SchemaAttributeType[] = ['tenant_id', 'role'].map((Name) => ({
  Name,
  AttributeDataType: 'String',
  Mutable: true,
  Required: false,
  DeveloperOnlyAttribute: false,
  StringAttributeConstraints: { MinLength: '0', MaxLength: '256' },
}));

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
