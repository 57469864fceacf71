import { startStandIns } from './standIns';

/**
 * Starts the stand-ins every suite shares (a Kafka-protocol broker and cognito-local) once per
 * `npm test`, and hands their addresses to the test workers through the environment. PostgreSQL
 * and Redis are the machine's; each test file gets its own database, Redis prefix and Kafka
 * topic (see stack.ts), so files never see each other. Suites that inject faults start their own.
 */
export default async function globalSetup(): Promise<void> {
  (globalThis as { fleetStandIns?: unknown }).fleetStandIns = await startStandIns();
}
