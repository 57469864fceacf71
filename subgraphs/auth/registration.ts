import { isCognitoError, type UserPool } from '../../lib/cognito/userPool';
import type { Database } from '../../lib/database';
import { BadUserInput } from '../../lib/errors';
import { saveUser, type AnnounceStandingChange, type UserRecord } from './users';

/**
 * Self-service registration. An email belongs on the platform only once its mailbox's owner proved
 * it: `register` leaves the Cognito account UNCONFIRMED and the pool mails a code; only
 * `confirmRegistration` with that code creates the platform's row, which `addTenantMember` needs.
 */

const ALREADY_REGISTERED = 'email is already registered';

function signUpRefused(error: unknown): never {
  if (isCognitoError(error, 'UsernameExistsException')) throw new BadUserInput('email', ALREADY_REGISTERED);
  if (isCognitoError(error, 'InvalidPasswordException')) throw new BadUserInput('password', 'password does not meet the pool policy');
  if (isCognitoError(error, 'InvalidParameterException')) throw new BadUserInput('email', 'email is not accepted');
  throw error;
}

/** Starts a registration; returns the new account's `sub`. */
export async function register(userPool: UserPool, email: string, password: string): Promise<string> {
  try {
    return await userPool.signUp(email, password);
  } catch (error) {
    if (!isCognitoError(error, 'UsernameExistsException')) signUpRefused(error);
  }
  // An UNCONFIRMED account proves nothing about the mailbox, so it must not let a squatter keep the
  // owner out: it is replaced, the code goes to whoever registered last, and only the mailbox's
  // owner can confirm. A CONFIRMED account is somebody's: "already registered".
  const existing = await userPool.findAccount(email);
  if (existing && existing.status !== 'UNCONFIRMED') throw new BadUserInput('email', ALREADY_REGISTERED);
  await userPool.deleteAccount(email);
  try {
    return await userPool.signUp(email, password);
  } catch (error) {
    signUpRefused(error); // e.g. a concurrent registration of the same address won
  }
}

// Wrong, expired, used, or for an address with no pending registration: one answer for all, so the
// mutation cannot tell anyone which addresses have accounts.
const CODE_REFUSED = [
  'CodeMismatchException',
  'ExpiredCodeException',
  'NotAuthorizedException',
  'UserNotFoundException',
  'InvalidParameterException',
  'TooManyFailedAttemptsException',
  'LimitExceededException',
];

export async function confirmRegistration(db: Database, userPool: UserPool, email: string, code: string, announce: AnnounceStandingChange): Promise<UserRecord> {
  try {
    await userPool.confirmSignUp(email, code);
  } catch (error) {
    if (isCognitoError(error, ...CODE_REFUSED)) {
      throw new BadUserInput('code', 'code is wrong or expired, or the registration is already confirmed; resendConfirmationCode sends a new one');
    }
    throw error;
  }
  const account = await userPool.findAccount(email);
  if (!account) throw new Error('a confirmed account is missing from the user pool');
  // Real Cognito marks the email verified on confirmation (AutoVerifiedAttributes: email);
  // cognito-local 5.3.0 does not. Either way the code reached this mailbox, which is what it means.
  if (!account.emailVerified) await userPool.markEmailVerified(email);
  return saveUser(db, { id: account.sub, email }, announce);
}

// What ResendConfirmationCode answers for an unknown, already confirmed or throttled address. The
// mutation answers `true` regardless, so it cannot be used to find out who has an account.
const RESEND_SILENCED = ['UserNotFoundException', 'InvalidParameterException', 'NotAuthorizedException', 'LimitExceededException', 'TooManyRequestsException'];

export async function resendConfirmationCode(userPool: UserPool, email: string): Promise<void> {
  try {
    await userPool.resendConfirmationCode(email);
  } catch (error) {
    if (!isCognitoError(error, ...RESEND_SILENCED)) throw error;
  }
}
