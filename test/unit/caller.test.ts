import { signCaller, verifyCaller, type Caller } from '../../lib/caller';

const secret = 'unit-test-secret-that-is-long-enough-0123456789';
const caller: Caller = { userId: 'u-1', email: 'a@fleet.test', role: 'MEMBER', tenantId: '7b0c6a64-1b8e-4b55-9c2c-6a2f5c0f6f11' };

describe('the signed caller header', () => {
  test('round-trips a caller and an anonymous gateway request', () => {
    expect(verifyCaller(signCaller(caller, secret), secret)).toEqual({ viaGateway: true, caller });
    expect(verifyCaller(signCaller(null, secret), secret)).toEqual({ viaGateway: true, caller: null });
  });

  test.each([
    ['absent', undefined],
    ['empty', ''],
    ['garbage', 'abc'],
    ['three parts', 'a.b.c'],
  ])('%s proves nothing', (_name, header) => {
    expect(verifyCaller(header, secret)).toEqual({ viaGateway: false, caller: null });
  });

  test('another secret, a tampered body, and an expired header prove nothing', () => {
    const header = signCaller(caller, secret);
    expect(verifyCaller(header, `${secret}x`).viaGateway).toBe(false);
    const [body, signature] = header.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ caller: { ...caller, role: 'ADMIN' }, exp: Date.now() + 60_000 })).toString('base64url');
    expect(verifyCaller(`${forged}.${signature}`, secret).viaGateway).toBe(false);
    expect(verifyCaller(`${body}.${signature}`, secret, Date.now() + 61_000).viaGateway).toBe(false);
  });
});
