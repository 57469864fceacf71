import { adminSession, graphql } from '../support/client';
import { startTestStack, type TestStack } from '../support/stack';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack();
});
afterAll(async () => {
  await stack?.stop();
});

test('admin logs in through the gateway and reads me with the verified token', async () => {
  const admin = await adminSession(stack);
  const me = await graphql(stack.gatewayUrl, '{ me { id email role } }', {}, { token: admin.token });
  expect(me.errors).toBeUndefined();
  expect(me.data).toEqual({ me: { id: admin.userId, email: stack.admin.email, role: 'ADMIN' } });
});
