import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import type DataLoader from 'dataloader';
import { z } from 'zod';
import type { Caller } from '../../lib/caller';
import type { Database } from '../../lib/database';
import { BadUserInput, Unauthenticated } from '../../lib/errors';
import { requireCaller } from '../../lib/scope';
import { isCognitoError, type PoolTokens, type UserPool } from '../../lib/cognito/userPool';
import { confirmRegistration, register, resendConfirmationCode } from './registration';
import { findUser, normaliseEmail, saveUser, type AnnounceStandingChange, type UserRecord } from './users';

export interface AuthContext {
  caller: Caller | null;
  db: Database;
  userPool: UserPool;
  users: DataLoader<string, UserRecord | null>;
  announce: AnnounceStandingChange;
}

const email = z.email().max(254);
// cognito-local enforces no password policy; this is the floor real pools are configured with too.
const password = z.string().min(8, 'must be at least 8 characters').max(256);
// Cognito's own pattern for confirmation codes; its codes are 6 digits.
const code = z.string().regex(/^\S{1,2048}$/, 'must be the code sent to the email address');

function parseField<T>(schema: z.ZodType<T>, field: string, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new BadUserInput(field, `${field} ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
  return parsed.data;
}

/**
 * The platform's row for a signed-in account. An account new to the platform (or one whose row was
 * retired) is recorded only when its email is verified: its row then takes over the email from any
 * older account that held it (see `saveUser`). Unverified accounts sign in as a MEMBER with nothing.
 */
async function accountUser(db: Database, claims: PoolTokens['claims'], announce: AnnounceStandingChange): Promise<UserRecord> {
  const known = await findUser(db, claims.sub);
  if (known && !known.retiredAt) return { id: known.id, email: known.email, role: known.role };
  const email = normaliseEmail(claims.email);
  const verified = claims.email_verified === true || claims.email_verified === 'true';
  if (!verified) return { id: claims.sub, email, role: 'MEMBER' };
  return saveUser(db, { id: claims.sub, email }, announce);
}

async function session(db: Database, tokens: PoolTokens, announce: AnnounceStandingChange) {
  return {
    idToken: tokens.idToken,
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    expiresIn: tokens.expiresIn,
    user: await accountUser(db, tokens.claims, announce),
  };
}

// One answer for every sign-in failure, so the API cannot be used to find out who has an account.
const SIGN_IN_FAILED = 'Incorrect email or password';
const NOT_CONFIRMED = 'Confirm the email address first: confirmRegistration with the code sent to it (resendConfirmationCode sends a new one)';

export const resolvers: GraphQLResolverMap<AuthContext> = {
  Query: {
    me: async (_root, _args, { caller, users }) => {
      const known = requireCaller(caller);
      return (await users.load(known.userId)) ?? { id: known.userId, email: known.email, role: known.role };
    },
  },
  Mutation: {
    register: async (_root, args: { email: string; password: string }, { userPool }) => {
      const address = normaliseEmail(parseField(email, 'email', args.email.trim()));
      const secret = parseField(password, 'password', args.password);
      // Registration never grants a role or a tenant: always a MEMBER without a tenant. The
      // platform records the user once the email is confirmed.
      return { id: await register(userPool, address, secret), email: address, role: 'MEMBER' };
    },
    confirmRegistration: async (_root, args: { email: string; code: string }, { db, userPool, announce }) => {
      const address = normaliseEmail(parseField(email, 'email', args.email.trim()));
      return confirmRegistration(db, userPool, address, parseField(code, 'code', args.code.trim()), announce);
    },
    resendConfirmationCode: async (_root, args: { email: string }, { userPool }) => {
      await resendConfirmationCode(userPool, normaliseEmail(parseField(email, 'email', args.email.trim())));
      return true;
    },
    login: async (_root, args: { email: string; password: string }, { db, userPool, announce }) => {
      try {
        return await session(db, await userPool.signIn(normaliseEmail(args.email), args.password), announce);
      } catch (error) {
        if (isCognitoError(error, 'NotAuthorizedException', 'UserNotFoundException', 'InvalidPasswordException', 'InvalidParameterException')) {
          throw new Unauthenticated(SIGN_IN_FAILED);
        }
        // Cognito says so only once the password checked out, so this tells nothing to a stranger.
        if (isCognitoError(error, 'UserNotConfirmedException')) throw new Unauthenticated(NOT_CONFIRMED);
        throw error;
      }
    },
    refreshSession: async (_root, args: { refreshToken: string }, { db, userPool, announce }) => {
      try {
        return await session(db, await userPool.refresh(args.refreshToken), announce);
      } catch (error) {
        if (isCognitoError(error, 'NotAuthorizedException', 'InvalidParameterException', 'UserNotFoundException')) {
          throw new Unauthenticated('The refresh token is invalid or expired');
        }
        throw error;
      }
    },
  },
  User: {
    __resolveReference: (reference: { id: string }, { users }: AuthContext) => users.load(reference.id),
  },
};
