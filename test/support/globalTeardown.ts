import type { StandIns } from './standIns';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { fleetStandIns?: StandIns }).fleetStandIns?.stop();
}
