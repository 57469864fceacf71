import type { CognitoLocal } from '../../tools/cognito-local';
import type { KafkaMock } from '../../tools/kafka-mock';

export default async function globalTeardown(): Promise<void> {
  const services = (globalThis as { fleetTestServices?: { kafka: KafkaMock; cognito: CognitoLocal } }).fleetTestServices;
  await Promise.all([services?.kafka.stop(), services?.cognito.stop()]);
}
