import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import type { Caller } from '../../lib/caller';
import type { Database } from '../../lib/database';
import { DateTime } from '../../lib/dateTime';
import { BadUserInput, NotFound, Unauthenticated } from '../../lib/errors';
import { requireAdmin, requireCaller, scopeFor } from '../../lib/scope';
import type { UserPool } from '../../lib/userPool';
import { isUuid } from '../../lib/ids';
import { findTenant, listTenants, memberIds, setMembership, tenantFields, tenantOfUser, type TenantRecord } from './tenants';

export interface TenantContext {
  caller: Caller | null;
  viaGateway: boolean;
  db: Database;
  userPool: UserPool;
  /** Tells every gateway that the user's tenant changed (their open sockets hold the old one). */
  announceMembershipChange(userId: string): Promise<void>;
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === 'P2002';
}

export const resolvers: GraphQLResolverMap<TenantContext> = {
  DateTime,
  Query: {
    tenant: async (_root, args: { id: string }, { caller, db }) => {
      const known = requireCaller(caller);
      const tenant = await db.inScope(scopeFor(known), (tx) => findTenant(tx, args.id));
      // Another tenant's id is answered exactly like an id that does not exist.
      if (!tenant) throw new NotFound('Tenant');
      return tenant;
    },
    tenants: async (_root, _args, { caller, db }) => {
      const known = requireCaller(caller);
      return db.inScope(scopeFor(known), (tx) => listTenants(tx));
    },
  },
  Mutation: {
    createTenant: async (_root, args: { name: string }, { caller, db }) => {
      const admin = requireAdmin(caller);
      const name = args.name.trim();
      if (name.length < 1 || name.length > 100) throw new BadUserInput('name', 'name must be 1 to 100 characters');
      try {
        return await db.inScope(scopeFor(admin), (tx) => tx.tenant.create({ data: { name }, select: tenantFields }));
      } catch (error) {
        if (isUniqueViolation(error)) throw new BadUserInput('name', 'a tenant with this name already exists');
        throw error;
      }
    },
    addTenantMember: async (_root, args: { tenantId: string; email: string }, { caller, db, userPool, announceMembershipChange }) => {
      const admin = requireAdmin(caller);
      const email = args.email.trim().toLowerCase();
      const member = await db.inScope(scopeFor(admin), async (tx) => {
        if (!isUuid(args.tenantId) || !(await tx.tenant.findUnique({ where: { id: args.tenantId }, select: { id: true } }))) {
          throw new NotFound('Tenant');
        }
        const user = await tx.user.findUnique({ where: { email }, select: { id: true, role: true } });
        if (!user) throw new NotFound('User');
        if (user.role === 'ADMIN') throw new BadUserInput('email', 'an ADMIN operates the platform and cannot join a tenant');
        await setMembership(tx, user.id, args.tenantId);
        // Inside the transaction: if Cognito refuses, the membership is not recorded either.
        await userPool.setAttributes(email, { 'custom:tenant_id': args.tenantId });
        return { id: user.id };
      });
      await announceMembershipChange(member.id);
      return member;
    },
  },
  Tenant: {
    __resolveReference: async (reference: { id: string }, { caller, db }: TenantContext) => {
      const known = requireCaller(caller);
      return db.inScope(scopeFor(known), (tx) => findTenant(tx, reference.id));
    },
    members: async (tenant: TenantRecord, _args, { caller, db }) => {
      const known = requireCaller(caller);
      const ids = await db.inScope(scopeFor(known), (tx) => memberIds(tx, tenant.id));
      return ids.map((id) => ({ __typename: 'User', id }));
    },
  },
  User: {
    __resolveReference: (reference: { id: string }) => reference,
    tenant: async (user: { id: string }, _args, { caller, viaGateway, db }) => {
      if (caller) return db.inScope(scopeFor(caller), (tx) => tenantOfUser(tx, user.id));
      // Anonymous requests reach a User only through register/login/refreshSession, whose user is
      // the one who just authenticated, so `login { user { tenant { name } } }` may show it. The
      // gateway vouches for that; a request straight to this subgraph gets nothing.
      if (!viaGateway) throw new Unauthenticated();
      return db.inScope({ kind: 'system' }, (tx) => tenantOfUser(tx, user.id));
    },
  },
};
