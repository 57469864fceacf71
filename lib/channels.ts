/**
 * Redis pub/sub channel names, defined once for the bridge (publisher) and the gateway (subscriber).
 *
 * Every accepted location is published to two channels:
 *   <prefix>tenant:<tenantId>:locations                  every device of the tenant
 *   <prefix>tenant:<tenantId>:device:<deviceId>:locations one device
 * so a gateway subscribes only to what its clients follow and never receives another tenant's
 * traffic. The prefix has no built-in default on purpose: deployments (and test runs) sharing one
 * Redis must not hear each other, so the prefix is always configured (`REDIS_PREFIX`).
 */
export type LocationChannelScope = { tenantId: string; deviceId?: string | null };

export function locationChannel(prefix: string, scope: LocationChannelScope): string {
  return scope.deviceId
    ? `${prefix}tenant:${scope.tenantId}:device:${scope.deviceId}:locations`
    : `${prefix}tenant:${scope.tenantId}:locations`;
}

export function locationChannels(prefix: string, event: { tenantId: string; deviceId: string }): string[] {
  return [
    locationChannel(prefix, { tenantId: event.tenantId }),
    locationChannel(prefix, { tenantId: event.tenantId, deviceId: event.deviceId }),
  ];
}

/**
 * `<prefix>memberships`: the tenant subgraph publishes a user id here when an ADMIN moves that user
 * to another tenant, and the auth subgraph when it retires an account or changes its role, so
 * every gateway forgets what it cached of the user and closes the user's open sockets.
 */
export function membershipChannel(prefix: string): string {
  return `${prefix}memberships`;
}

/** What can publish (an ioredis client fits). */
export interface Publisher {
  publish(channel: string, message: string): Promise<unknown>;
}

/**
 * Announces that a user's role or tenant changed (a membership moved, an account retired or made
 * ADMIN): gateways forget their cached caller and close the user's sockets (4403).
 */
export async function announceStandingChange(redis: Publisher, prefix: string, userId: string): Promise<void> {
  await redis.publish(membershipChannel(prefix), JSON.stringify({ userId }));
}
