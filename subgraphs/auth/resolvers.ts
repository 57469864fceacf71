import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import type DataLoader from 'dataloader';
import { z } from 'zod';
import type { Caller } from '../../lib/caller';
import type { Database } from '../../lib/database';
import { BadUserInput, Unauthenticated } from '../../lib/errors';
import { requireCaller } from '../../lib/scope';
import { isCognitoError, type PoolTokens, type UserPool } from '../../lib/userPool';
import { findUserForLogin, normaliseEmail, saveUser, type UserRecord } from './users';

export interface AuthContext {
  caller: Caller | null;
  db: Database;
  userPool: UserPool;
  users: DataLoader<string, UserRecord | null>;
}

const email = z.email().max(254);
// cognito-local enforces no password policy; this is the floor real pools are configured with too.
const password = z.string().min(8, 'must be at least 8 characters').max(256);

function parseField<T>(schema: z.ZodType<T>, field: string, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new BadUserInput(field, `${field} ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
  return parsed.data;
}

async function session(db: Database, tokens: PoolTokens) {
  const known = await findUserForLogin(db, tokens.claims.sub);
  const user: UserRecord = known ?? { id: tokens.claims.sub, email: normaliseEmail(tokens.claims.email), role: 'MEMBER' };
  if (!known) await saveUser(db, user);
  return {
    idToken: tokens.idToken,
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    expiresIn: tokens.expiresIn,
    user,
  };
}

// One answer for every sign-in failure, so the API cannot be used to find out who has an account.
const SIGN_IN_FAILED = 'Incorrect email or password';

export const resolvers: GraphQLResolverMap<AuthContext> = {
  Query: {
    me: async (_root, _args, { caller, users }) => {
      const known = requireCaller(caller);
      return (await users.load(known.userId)) ?? { id: known.userId, email: known.email, role: known.role };
    },
  },
  Mutation: {
    register: async (_root, args: { email: string; password: string }, { db, userPool }) => {
      const address = normaliseEmail(parseField(email, 'email', args.email.trim()));
      const secret = parseField(password, 'password', args.password);
      let id: string;
      try {
        id = await userPool.signUp(address, secret);
      } catch (error) {
        if (isCognitoError(error, 'UsernameExistsException')) throw new BadUserInput('email', 'email is already registered');
        if (isCognitoError(error, 'InvalidPasswordException')) throw new BadUserInput('password', 'password does not meet the pool policy');
        if (isCognitoError(error, 'InvalidParameterException')) throw new BadUserInput('email', 'email is not accepted');
        throw error;
      }
      // Registration never grants a role or a tenant: always a MEMBER without a tenant.
      return saveUser(db, { id, email: address, role: 'MEMBER' });
    },
    login: async (_root, args: { email: string; password: string }, { db, userPool }) => {
      try {
        return await session(db, await userPool.signIn(normaliseEmail(args.email), args.password));
      } catch (error) {
        if (
          isCognitoError(error, 'NotAuthorizedException', 'UserNotFoundException', 'InvalidPasswordException', 'UserNotConfirmedException', 'InvalidParameterException')
        ) {
          throw new Unauthenticated(SIGN_IN_FAILED);
        }
        throw error;
      }
    },
    refreshSession: async (_root, args: { refreshToken: string }, { db, userPool }) => {
      try {
        return await session(db, await userPool.refresh(args.refreshToken));
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
