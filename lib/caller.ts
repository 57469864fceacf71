import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * Who is calling, as established by the gateway from a verified Cognito ID token and the
 * platform's own records (role and tenant come from the database, not from token claims).
 *
 * The gateway passes it to every subgraph fetch in the `x-fleet-caller` header, signed with
 * HMAC-SHA256 under `CALLER_SIGNING_SECRET` and valid for a short time. Subgraphs accept no other
 * source of identity: a request that reaches a subgraph directly, with a hand-made or missing
 * header, has no caller.
 */
export const CALLER_HEADER = 'x-fleet-caller';

export const callerSchema = z.object({
  userId: z.string().min(1),
  email: z.string(),
  role: z.enum(['ADMIN', 'MEMBER']),
  tenantId: z.string().nullable(),
});
export type Caller = z.infer<typeof callerSchema>;

/** `caller: null`: an anonymous client whose request still came through the gateway (public mutations). */
const envelopeSchema = z.object({ caller: callerSchema.nullable(), exp: z.number() });

export type GatewayRequest = { viaGateway: true; caller: Caller | null } | { viaGateway: false; caller: null };
const NOT_FROM_GATEWAY: GatewayRequest = { viaGateway: false, caller: null };

const DEFAULT_TTL_MS = 60_000;

function mac(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

export function signCaller(caller: Caller | null, secret: string, now = Date.now(), ttlMs = DEFAULT_TTL_MS): string {
  const body = Buffer.from(JSON.stringify({ caller, exp: now + ttlMs })).toString('base64url');
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

/**
 * What the header proves: that the gateway sent the request, and for whom. Absent, forged,
 * malformed or expired headers prove nothing (`viaGateway: false`, no caller).
 */
export function verifyCaller(header: string | undefined | null, secret: string, now = Date.now()): GatewayRequest {
  if (!header) return NOT_FROM_GATEWAY;
  const [body, signature, extra] = header.split('.');
  if (!body || !signature || extra !== undefined) return NOT_FROM_GATEWAY;
  const expected = mac(secret, body);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return NOT_FROM_GATEWAY;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body, 'base64url').toString());
  } catch {
    return NOT_FROM_GATEWAY;
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success || parsed.data.exp < now) return NOT_FROM_GATEWAY;
  return { viaGateway: true, caller: parsed.data.caller };
}
