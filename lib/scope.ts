import type { Caller } from './caller';
import type { DatabaseScope } from './database';
import { Forbidden, Unauthenticated } from './errors';

/** The row-level-security scope a caller's database work runs in (see prisma/README.md). */
export function scopeFor(caller: Caller): DatabaseScope {
  if (caller.role === 'ADMIN') return { kind: 'admin', userId: caller.userId };
  if (caller.tenantId) return { kind: 'member', tenantId: caller.tenantId, userId: caller.userId };
  return { kind: 'user', userId: caller.userId };
}

export function requireCaller(caller: Caller | null): Caller {
  if (!caller) throw new Unauthenticated();
  return caller;
}

export function requireAdmin(caller: Caller | null): Caller {
  const known = requireCaller(caller);
  if (known.role !== 'ADMIN') throw new Forbidden('Only an ADMIN may do this');
  return known;
}

/** A MEMBER who belongs to a tenant; ADMINs own no devices, so tenant work is not theirs. */
export function requireTenantMember(caller: Caller | null): Caller & { tenantId: string } {
  const known = requireCaller(caller);
  if (known.role !== 'MEMBER' || !known.tenantId) throw new Forbidden('Only a member of a tenant may do this');
  return known as Caller & { tenantId: string };
}
