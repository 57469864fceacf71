// Loaded into the cognito-local child with `--require`, before cognito-local itself (plain CommonJS:
// the child runs without tsx). Two things cognito-local 5.3.0 lacks that the platform's registration
// flow needs, added through its own modules so they behave as its other targets do:
//
// 1. A mailbox. cognito-local "delivers" confirmation codes by logging a decorated box. Here every
//    message is instead appended, synchronously (before the API call that sent it answers), as one
//    JSON line to FLEET_COGNITO_MAILBOX, and announced on stdout as `FLEET_MAIL <json>` so that the
//    parent (tools/cognito-local/index.ts) can report it, e.g. `npm run dev` prints each code.
// 2. The ResendConfirmationCode target, as real Cognito answers it: a new code for an UNCONFIRMED
//    user, UserNotFoundException for an unknown one, InvalidParameterException once confirmed.
//
// Development and tests only, like cognito-local itself.
'use strict';

const { appendFileSync } = require('node:fs');
const { ConsoleMessageSender } = require('cognito-local/lib/services/messageDelivery/consoleMessageSender');
const { Targets } = require('cognito-local/lib/targets/targets');
const { InvalidParameterError, UserNotFoundError } = require('cognito-local/lib/errors');
const { selectAppropriateDeliveryMethod } = require('cognito-local/lib/services/messageDelivery/deliveryMethod');

const MAIL_MARKER = 'FLEET_MAIL ';
const mailbox = process.env.FLEET_COGNITO_MAILBOX;

ConsoleMessageSender.prototype.sendToConsole = function deliverToMailbox(_ctx, user, destination, message) {
  const mail = { at: new Date().toISOString(), to: destination, code: message.__code, username: user.Username };
  const line = JSON.stringify(mail);
  if (mailbox) appendFileSync(mailbox, `${line}\n`);
  process.stdout.write(`${MAIL_MARKER}${line}\n`);
  return Promise.resolve();
};

Targets.ResendConfirmationCode =
  ({ clock, cognito, messages, otp }) =>
  async (ctx, req) => {
    const userPool = await cognito.getUserPoolForClientId(ctx, req.ClientId);
    const user = await userPool.getUserByUsername(ctx, req.Username);
    if (!user) throw new UserNotFoundError();
    if (user.UserStatus !== 'UNCONFIRMED') throw new InvalidParameterError('User is already confirmed.');
    const deliveryDetails = selectAppropriateDeliveryMethod(userPool.options.AutoVerifiedAttributes ?? [], user);
    if (!deliveryDetails) throw new InvalidParameterError('User has no attribute matching desired auto verified attributes');
    const code = otp();
    await messages.deliver(ctx, 'ResendCode', req.ClientId, userPool.options.Id, user, code, req.ClientMetadata, deliveryDetails);
    await userPool.saveUser(ctx, { ...user, ConfirmationCode: code, UserLastModifiedDate: clock.get() });
    return { CodeDeliveryDetails: deliveryDetails };
  };
