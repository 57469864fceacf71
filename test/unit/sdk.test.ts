import { FleetApiError } from '../../clients/sdk/src';
import { refreshTime, tokenTimes } from '../../clients/sdk/src/tokens';

/** The SDK's own logic that needs no server: reading API errors, and when to refresh a token. */
const jwt = (claims: Record<string, unknown>) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

test('FleetApiError carries the contract code and the fields a client acts on', () => {
  const error = new FleetApiError(
    [
      { message: 'latitude must be within -90..90', path: ['recordLocations'], extensions: { code: 'BAD_USER_INPUT', field: 'latitude', index: 3 } },
      { message: 'second', extensions: { code: 'BAD_USER_INPUT', field: 'speed', index: 4 } },
    ],
    200,
  );
  expect(error).toMatchObject({ name: 'FleetApiError', code: 'BAD_USER_INPUT', field: 'latitude', index: 3, status: 200, path: ['recordLocations'], message: 'latitude must be within -90..90' });
  expect(error.errors).toHaveLength(2);
  expect(new FleetApiError([{ message: 'slow down', extensions: { code: 'RATE_LIMITED', retryAfterMs: 250, limit: 'subscriptionsPerConnection' } }])).toMatchObject({ retryAfterMs: 250, limit: 'subscriptionsPerConnection' });
});

test('a code outside the contract is reported as INTERNAL_SERVER_ERROR, never trusted as is', () => {
  expect(new FleetApiError([{ message: 'x', extensions: { code: 'SOMETHING_ELSE' } }]).code).toBe('INTERNAL_SERVER_ERROR');
  expect(new FleetApiError([{ message: 'x' }]).code).toBe('INTERNAL_SERVER_ERROR');
});

test('a token is refreshed a lead before expiry, at most half its lifetime early', () => {
  const hour = jwt({ iat: 1_000, exp: 4_600 });
  expect(tokenTimes(hour)).toEqual({ issuedAt: 1_000_000, expiresAt: 4_600_000 });
  expect(refreshTime(tokenTimes(hour), 60_000)).toBe(4_540_000);
  // Development pools issue tokens that live seconds: half-way through, not before issue.
  expect(refreshTime(tokenTimes(jwt({ iat: 100, exp: 104 })), 60_000)).toBe(102_000);
  expect(refreshTime(tokenTimes('not-a-jwt'), 60_000)).toBeUndefined();
});
