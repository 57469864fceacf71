import { readFileSync } from 'node:fs';
import type { Mail } from '../../tools/cognito-local';

/**
 * The shared cognito-local's mailbox (tools/cognito-local/emulatorExtensions.cjs): what the pool
 * "emailed". Tests read confirmation codes here, as a user reads their inbox. The emulator appends a
 * message before the API call that sent it answers, so once `register` (or
 * `resendConfirmationCode`) has answered, its code is in the file: nothing to wait for.
 */
export function mailTo(address: string, mailbox = process.env.TEST_COGNITO_MAILBOX): Mail[] {
  if (!mailbox) throw new Error('TEST_COGNITO_MAILBOX is not set: run the tests with jest (globalSetup starts the stand-ins)');
  let text = '';
  try {
    text = readFileSync(mailbox, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // nothing delivered yet
  }
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Mail)
    .filter((mail) => mail.to === address);
}

/** The newest confirmation code sent to `address`. */
export function verificationCode(address: string, mailbox?: string): string {
  const code = mailTo(address, mailbox).at(-1)?.code;
  if (!code) throw new Error(`no code was sent to ${address}`);
  return code;
}
