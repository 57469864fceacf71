import { JwtRsaVerifier } from 'aws-jwt-verify';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import type { Caller } from '../lib/caller';
import type { Database } from '../lib/database';
import { Unauthenticated } from '../lib/errors';

/**
 * Who a request is from: the Cognito ID token verified in full (signature against the pool's JWKS,
 * issuer, audience = app client, `token_use` = id, expiry), then the caller's role and tenant read
 * from the platform's own records. Token claims name the user; they do not grant anything, so a
 * token minted before an ADMIN moved the user to another tenant opens only the new tenant.
 */
export interface UserPoolIdentityOptions {
  region: string;
  userPoolId: string;
  clientId: string;
  /** Set for a local emulator: its issuer is `<endpoint>/<poolId>` on plain http. */
  issuer?: string;
}

export function userPoolIssuer(options: UserPoolIdentityOptions): string {
  return options.issuer ?? `https://cognito-idp.${options.region}.amazonaws.com/${options.userPoolId}`;
}

export interface VerifiedToken {
  sub: string;
  email: string;
  exp: number;
}

export class TokenVerifier {
  private readonly verifier;

  constructor(options: UserPoolIdentityOptions) {
    const issuer = userPoolIssuer(options);
    // aws-jwt-verify's own fetcher speaks https only; a local emulator serves its JWKS over http.
    const jwksCache = new SimpleJwksCache({
      fetcher: {
        fetch: async (uri: string) => {
          const response = await fetch(uri, { signal: AbortSignal.timeout(5000) });
          if (!response.ok) throw new Error(`JWKS request failed with HTTP ${response.status}`);
          return response.arrayBuffer();
        },
      },
    });
    this.verifier = JwtRsaVerifier.create(
      {
        issuer,
        audience: options.clientId,
        jwksUri: `${issuer}/.well-known/jwks.json`,
        customJwtCheck: ({ payload }) => {
          if (payload.token_use !== 'id') throw new Error('not an ID token');
        },
      },
      { jwksCache },
    );
  }

  /** Loads the JWKS ahead of the first request; unknown `kid`s later trigger a refetch. */
  async warm(): Promise<void> {
    await this.verifier.hydrate();
  }

  async verify(token: string): Promise<VerifiedToken> {
    try {
      const payload = await this.verifier.verify(token);
      if (typeof payload.sub !== 'string' || typeof payload.email !== 'string' || typeof payload.exp !== 'number') {
        throw new Error('ID token lacks sub, email or exp');
      }
      return { sub: payload.sub, email: payload.email, exp: payload.exp };
    } catch {
      // Which check failed is not the client's business (and would help an attacker).
      throw new Unauthenticated('The token is invalid or expired');
    }
  }
}

/** Reads `Bearer <token>` from an Authorization value; anything else is not a token. */
export function bearerToken(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return match?.[1] ?? null;
}

export class CallerDirectory {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly db: Database,
  ) {}

  /** The caller for a verified token; throws UNAUTHENTICATED for a token that does not verify. */
  async callerFor(token: string): Promise<{ caller: Caller; expiresAt: number }> {
    const verified = await this.verifier.verify(token);
    const record = await this.db.inScope({ kind: 'user', userId: verified.sub }, (tx) =>
      tx.user.findUnique({ where: { id: verified.sub }, select: { role: true, membership: { select: { tenantId: true } } } }),
    );
    return {
      caller: {
        userId: verified.sub,
        email: verified.email,
        role: record?.role ?? 'MEMBER',
        tenantId: record?.role === 'ADMIN' ? null : (record?.membership?.tenantId ?? null),
      },
      expiresAt: verified.exp * 1000,
    };
  }
}
