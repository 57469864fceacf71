import { JwtRsaVerifier } from 'aws-jwt-verify';
import DataLoader from 'dataloader';
import { FetchError, JwksNotAvailableInCacheError, JwksValidationError } from 'aws-jwt-verify/error';
import { SimpleJwksCache } from 'aws-jwt-verify/jwk';
import type { Caller } from '../lib/caller';
import { isScopeUserId, statement, type Database } from '../lib/database';
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

/** How long a fully verified token is reused at most (it must also not have expired). */
const VERIFIED_REUSE_MS = 5 * 60_000;
const VERIFIED_CACHE_SIZE = 10_000;

export class TokenVerifier {
  private readonly verifier;
  private readonly verified = new Map<string, { token: VerifiedToken; until: number }>();

  constructor(options: UserPoolIdentityOptions) {
    const issuer = userPoolIssuer(options);
    // aws-jwt-verify's own fetcher speaks https only; a local emulator serves its JWKS over http.
    const jwksCache = new SimpleJwksCache({
      fetcher: {
        fetch: async (uri: string) => {
          try {
            const response = await fetch(uri, { signal: AbortSignal.timeout(5000) });
            if (!response.ok) throw new Error(`JWKS request failed with HTTP ${response.status}`);
            return await response.arrayBuffer();
          } catch (error) {
            throw new JwksUnreachable(error);
          }
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

  /**
   * Throws UNAUTHENTICATED for a token that does not verify, IdentityUnavailable when the keys
   * cannot be had. A token verified in full is remembered (by its exact text) until it expires, at
   * most VERIFIED_REUSE_MS: a dashboard sends the same token with every request and every
   * subscription, and the signature check was the largest part of identity's CPU.
   */
  async verify(token: string): Promise<VerifiedToken> {
    const now = Date.now();
    const known = this.verified.get(token);
    if (known && known.until > now) return known.token;
    const fresh = await this.verifyFully(token);
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, { token: fresh, until: Math.min(fresh.exp * 1000, now + VERIFIED_REUSE_MS) });
    return fresh;
  }

  private async verifyFully(token: string): Promise<VerifiedToken> {
    let payload;
    try {
      payload = await this.verifier.verify(token);
    } catch (error) {
      if (isKeyFailure(error)) throw new IdentityUnavailable('the user pool keys could not be loaded', { cause: error });
      // Which check failed is not the client's business (and would help an attacker).
      throw new Unauthenticated('The token is invalid or expired');
    }
    if (typeof payload.sub !== 'string' || typeof payload.email !== 'string' || typeof payload.exp !== 'number') {
      throw new Unauthenticated('The token is invalid or expired');
    }
    return { sub: payload.sub, email: payload.email, exp: payload.exp };
  }
}

/** The pool's JWKS could not be fetched (network, HTTP status): the pool failed, not the token. */
class JwksUnreachable extends Error {
  constructor(cause: unknown) {
    super('the user pool JWKS could not be fetched', { cause });
    this.name = 'JwksUnreachable';
  }
}

/** The keys could not be had or read; every other verdict (signature, claims, unknown kid) is the token's fault. */
function isKeyFailure(error: unknown): boolean {
  return error instanceof JwksUnreachable || error instanceof FetchError || error instanceof JwksNotAvailableInCacheError || error instanceof JwksValidationError;
}

/**
 * The caller could not be established for a reason that is not the token's: the database or the
 * user pool is unavailable or overloaded. Clients must retry, not sign the user out: HTTP answers
 * INTERNAL_SERVER_ERROR (503), a socket closes with 1013 (try again later).
 */
export class IdentityUnavailable extends Error {
  readonly retryAfterMs = 1000;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'IdentityUnavailable';
  }
}

/** Reads `Bearer <token>` from an Authorization value; anything else is not a token. */
export function bearerToken(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return match?.[1] ?? null;
}

/** Role and tenant as the platform's records say, for one user. */
interface CallerRecord {
  role: Caller['role'];
  tenantId: string | null;
}

/** Read in the user's own scope ('user'): RLS lets anyone see their own row and membership, nothing more. */
/**
 * Role and tenant of many callers in one statement: after a gateway restart a thousand dashboards
 * reconnect at once, and one transaction per caller queued them past the pool's wait bound (the
 * benchmark's reconnect storm). The gateway establishes identity for every process, so it reads
 * in the platform's scope, and only the rows of users whose tokens it has just verified.
 */
const CALLER_RECORDS = statement<{ id: string; role: Caller['role']; tenantId: string | null }>`
  SELECT u.id, u.role, m.tenant_id AS "tenantId" FROM users u LEFT JOIN tenant_members m ON m.user_id = u.id WHERE u.id = ANY($1::text[])`;
/** Callers read together at most (a statement's array stays small). */
const CALLER_BATCH = 500;

export interface CallerDirectoryOptions {
  /**
   * How long a user's role and tenant are reused without reading the database again. Membership
   * changes are announced (see `forget`), so this only bounds how long a MISSED announcement can
   * leave a moved user on the old tenant.
   */
  cacheTtlMs: number;
}

export class CallerDirectory {
  private readonly records = new Map<string, { record: CallerRecord; until: number }>();
  /** Lookups in flight per user: a hundred sockets of one user opening at once read once. */
  private readonly reading = new Map<string, Promise<CallerRecord>>();
  /** Bumped by every `forget`: a read that started before one must not be cached (it may be stale). */
  private epoch = 0;
  /** Lookups that start in the same turn of the event loop share one statement. */
  private readonly loader: DataLoader<string, { role: Caller['role']; tenantId: string | null } | null>;

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly db: Database,
    private readonly options: CallerDirectoryOptions = { cacheTtlMs: 5_000 },
  ) {
    this.loader = new DataLoader(
      async (ids) => {
        const rows = await this.db.scoped({ kind: 'system' }, (sql) => sql.rows(CALLER_RECORDS, [[...ids]]));
        const byId = new Map(rows.map((row) => [row.id, row]));
        return ids.map((id) => byId.get(id) ?? null);
      },
      { cache: false, maxBatchSize: CALLER_BATCH },
    );
  }

  /**
   * The caller for a token: UNAUTHENTICATED when the token does not verify, IdentityUnavailable
   * when it does but the records cannot be read now.
   */
  async callerFor(token: string): Promise<{ caller: Caller; expiresAt: number }> {
    const verified = await this.verifier.verify(token);
    const record = await this.recordFor(verified.sub);
    return {
      caller: { userId: verified.sub, email: verified.email, role: record.role, tenantId: record.tenantId },
      expiresAt: verified.exp * 1000,
    };
  }

  /** A known user's role and tenant now (cached like every lookup): for sockets, whose token was verified on connect. */
  async standingOf(userId: string): Promise<{ role: Caller['role']; tenantId: string | null }> {
    return this.recordFor(userId);
  }

  /** A user's membership changed: the next request reads it again. */
  forget(userId: string): void {
    this.epoch += 1;
    this.records.delete(userId);
    this.reading.delete(userId);
  }

  /** Announcements may have been missed (Redis reconnected): read everyone again. */
  forgetAll(): void {
    this.epoch += 1;
    this.records.clear();
    this.reading.clear();
  }

  private async recordFor(userId: string): Promise<CallerRecord> {
    const cached = this.records.get(userId);
    if (cached && cached.until > Date.now()) return cached.record;
    let reading = this.reading.get(userId);
    if (!reading) {
      const current = this.read(userId).finally(() => {
        if (this.reading.get(userId) === current) this.reading.delete(userId);
      });
      reading = current;
      this.reading.set(userId, reading);
    }
    return reading;
  }

  private async read(userId: string): Promise<CallerRecord> {
    const epoch = this.epoch;
    // Cognito subs are uuids: an id no scope can carry has no row, like any unknown user.
    if (!isScopeUserId(userId)) return { role: 'MEMBER', tenantId: null };
    let row;
    try {
      row = await this.loader.load(userId);
    } catch (error) {
      throw new IdentityUnavailable('the caller\'s role and tenant could not be read', { cause: error });
    }
    const record: CallerRecord = {
      role: row?.role ?? 'MEMBER',
      tenantId: row?.role === 'ADMIN' ? null : (row?.tenantId ?? null),
    };
    if (epoch === this.epoch) this.records.set(userId, { record, until: Date.now() + this.options.cacheTtlMs });
    return record;
  }
}
