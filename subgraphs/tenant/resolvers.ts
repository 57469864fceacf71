import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import type { Caller } from '../../lib/caller';
import type { Database } from '../../lib/database';
import { DateTime } from '../../lib/dateTime';
import { BadUserInput, NotFound, Unauthenticated } from '../../lib/errors';
import { requireAdmin, requireCaller, scopeFor } from '../../lib/scope';
import type { UserPool } from '../../lib/cognito/userPool';
import { isUuid } from '../../lib/ids';
import { listTenants, setMembership, tenantFields, userByEmail, type TenantLoaders, type TenantRecord } from './tenants';

export interface TenantContext {
  caller: Caller | null;
  viaGateway: boolean;
  db: Database;
  userPool: UserPool;
  /** Tells every gateway that the user's tenant changed (their open sockets hold the old one). */
  announceMembershipChange(userId: string): Promise<void>;
  /** Per request: tenant, membership and member reads batched (see `tenantLoadersFor`). */
  loaders: TenantLoaders;
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === 'P2002';
}

export const resolvers: GraphQLResolverMap<TenantContext> = {
  DateTime,
  Query: {
    tenant: async (_root, args: { id: string }, { caller, loaders }) => {
      requireCaller(caller);
      const tenant = await loaders.tenant.load(args.id);
      // Another tenant's id is answered exactly like an id that does not exist.
      if (!tenant) throw new NotFound('Tenant');
      return tenant;
    },
    tenants: async (_root, _args, { caller, db }) => {
      const known = requireCaller(caller);
      return db.scoped(scopeFor(known), (sql) => listTenants(sql));
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
      const user = await db.inScope(scopeFor(admin), async (tx) => {
        if (!isUuid(args.tenantId) || !(await tx.tenant.findUnique({ where: { id: args.tenantId }, select: { id: true } }))) {
          throw new NotFound('Tenant');
        }
        return userByEmail(tx, email);
      });
      if (!user) throw new NotFound('User');
      if (user.role === 'ADMIN') throw new BadUserInput('email', 'an ADMIN operates the platform and cannot join a tenant');
      // Only the mailbox's owner: the pool's account for the address must be confirmed with the email
      // verified, and be the very account the platform recorded (a re-created account is someone
      // else). Anything less is answered like an unknown user, so it cannot be probed.
      const account = await userPool.findAccount(email);
      if (!account || account.status !== 'CONFIRMED' || !account.emailVerified || account.email !== email || account.sub !== user.id) {
        throw new NotFound('User');
      }
      await db.inScope(scopeFor(admin), async (tx) => {
        // Retired meanwhile by a re-created account's sign-in: that is someone else now.
        if ((await userByEmail(tx, email))?.id !== user.id) throw new NotFound('User');
        await setMembership(tx, user.id, args.tenantId);
        // Inside the transaction: if Cognito refuses, the membership is not recorded either.
        await userPool.setAttributes(email, { 'custom:tenant_id': args.tenantId });
      });
      await announceMembershipChange(user.id);
      return { id: user.id };
    },
  },
  Tenant: {
    // `_entities` with many tenants (a batch of live events) reads them in one query.
    __resolveReference: (reference: { id: string }, { loaders }: TenantContext) => loaders.tenant.load(reference.id),
    members: async (tenant: TenantRecord, _args, { loaders }) => {
      const ids = await loaders.memberIds.load(tenant.id);
      return ids.map((id) => ({ __typename: 'User', id }));
    },
  },
  User: {
    __resolveReference: (reference: { id: string }) => reference,
    tenant: async (user: { id: string }, _args, { caller, viaGateway, loaders }) => {
      if (caller) return loaders.tenantOfUser.load(user.id);
      // Anonymous requests reach a User only through register/login/refreshSession, whose user is
      // the one who just authenticated, so `login { user { tenant { name } } }` may show it. The
      // gateway vouches for that; a request straight to this subgraph gets nothing.
      if (!viaGateway) throw new Unauthenticated();
      return loaders.tenantOfUserAsSystem.load(user.id);
    },
  },
};
