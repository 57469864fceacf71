import { startCognitoLocal } from '../../tools/cognito-local';
import { startKafkaMock } from '../../tools/kafka-mock';

/**
 * Starts the stand-ins every suite shares (a Kafka-protocol broker and cognito-local) once per
 * `npm test`, and hands their addresses to the test workers through the environment. PostgreSQL
 * and Redis are the machine's; each test file gets its own database, Redis prefix and Kafka
 * topic (see stack.ts), so files never see each other. Suites that inject faults start their own.
 */
export default async function globalSetup(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const [kafka, cognito] = await Promise.all([startKafkaMock(), startCognitoLocal()]);
  Object.assign(process.env, {
    TEST_KAFKA_BROKERS: kafka.bootstrap,
    TEST_COGNITO_ENDPOINT: cognito.endpoint,
    TEST_COGNITO_USER_POOL_ID: cognito.userPoolId,
    TEST_COGNITO_CLIENT_ID: cognito.clientId,
    TEST_COGNITO_ISSUER: cognito.issuer,
  });
  (globalThis as { fleetTestServices?: unknown }).fleetTestServices = { kafka, cognito };
}
