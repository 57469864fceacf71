import { startCognitoLocal, type CognitoLocal } from '../../tools/cognito-local';
import { startKafkaMock, type KafkaMock } from '../../tools/kafka-mock';

/**
 * The stand-ins a test run (or a benchmark run) shares: a Kafka-protocol broker and cognito-local.
 * Their addresses go into the environment, where `startTestStack` reads them.
 */
export interface StandIns {
  kafka: KafkaMock;
  cognito: CognitoLocal;
  stop(): Promise<void>;
}

export async function startStandIns(): Promise<StandIns> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const [kafka, cognito] = await Promise.all([startKafkaMock(), startCognitoLocal()]);
  Object.assign(process.env, {
    TEST_KAFKA_BROKERS: kafka.bootstrap,
    TEST_COGNITO_ENDPOINT: cognito.endpoint,
    TEST_COGNITO_USER_POOL_ID: cognito.userPoolId,
    TEST_COGNITO_CLIENT_ID: cognito.clientId,
    TEST_COGNITO_ISSUER: cognito.issuer,
    TEST_COGNITO_MAILBOX: cognito.mailbox,
  });
  return {
    kafka,
    cognito,
    stop: async () => {
      await Promise.all([kafka.stop(), cognito.stop()]);
    },
  };
}
