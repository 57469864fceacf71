/**
 * Reads the timing claims of a JWT (the ID token) without verifying it: the SDK only needs to know
 * when to refresh; the gateway is what verifies.
 */
export interface TokenTimes {
  issuedAt?: number;
  expiresAt?: number;
}

export function tokenTimes(token: string): TokenTimes {
  const payload = token.split('.')[1];
  if (!payload) return {};
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '=');
    const claims = JSON.parse(atob(base64)) as { iat?: unknown; exp?: unknown };
    return {
      issuedAt: typeof claims.iat === 'number' ? claims.iat * 1000 : undefined,
      expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : undefined,
    };
  } catch {
    return {};
  }
}

/**
 * When a token should be replaced: `leadMs` before it expires, but never earlier than half its
 * lifetime (development pools issue tokens that live seconds). Undefined: no expiry to go by.
 */
export function refreshTime(times: TokenTimes, leadMs: number): number | undefined {
  if (times.expiresAt === undefined) return undefined;
  const lifetime = times.issuedAt !== undefined ? times.expiresAt - times.issuedAt : Infinity;
  return times.expiresAt - Math.min(leadMs, lifetime / 2);
}
