import { GraphQLScalarType, Kind } from 'graphql';

// ISO-8601 with a timezone (Z or ±hh:mm); a timestamp without one is ambiguous, so it is refused.
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

// A plain TypeError, not a BadUserInput: the scalar cannot know which input field it is parsing.
// graphql-js then attaches the offending AST node (literals) or value path (variables), from which
// the gateway names the field (`recordedAt`) and list index (gateway/operationInput.ts).
function parseDateTime(value: unknown): Date {
  if (typeof value !== 'string' || !ISO_WITH_ZONE.test(value) || Number.isNaN(Date.parse(value))) {
    throw new TypeError('DateTime must be an ISO-8601 string with a timezone, e.g. 2026-11-23T10:00:00.000Z');
  }
  return new Date(value);
}

/**
 * `DateTime`: ISO-8601 strings with timezone on the wire, `Date` in resolvers. The subgraphs and
 * the gateway's edge checks (gateway/operationGuard.ts) share this one definition.
 */
export const DateTime = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize(value) {
    const date = value instanceof Date ? value : new Date(value as string);
    if (Number.isNaN(date.getTime())) throw new TypeError('DateTime cannot represent an invalid date');
    return date.toISOString();
  },
  parseValue: parseDateTime,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new TypeError('DateTime must be a string');
    return parseDateTime(ast.value);
  },
});
