const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids are opaque to clients: one that is not a UUID names nothing, so lookups answer NOT_FOUND. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}
