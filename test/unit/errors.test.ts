import { formatFleetError } from '../../lib/errors';

describe('formatFleetError', () => {
  test('keeps the contract codes and their extensions, without internals', () => {
    const formatted = formatFleetError({
      message: 'latitude must be between -90 and 90',
      extensions: { code: 'BAD_USER_INPUT', field: 'latitude', stacktrace: ['at x'], serviceName: 'location', response: { url: 'http://internal' } },
    });
    expect(formatted).toEqual({ message: 'latitude must be between -90 and 90', extensions: { code: 'BAD_USER_INPUT', field: 'latitude' } });
  });

  test.each(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST'])('maps %s to BAD_USER_INPUT about the query', (code) => {
    expect(formatFleetError({ message: 'Syntax Error', extensions: { code } }).extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'query' });
  });

  test('a pre-execution error keeps the field the gateway located, and loses Apollo internals', () => {
    const located = formatFleetError({ message: 'bad', extensions: { code: 'GRAPHQL_VALIDATION_FAILED', field: 'recordedAt', index: 3, http: { status: 400 }, validationErrorCode: 'X' } });
    expect(located.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'recordedAt', index: 3 });
    expect(formatFleetError({ message: 'Unknown operation named "x".', extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } }).extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'operationName' });
  });

  test('masks everything else as INTERNAL_SERVER_ERROR and reports it', () => {
    const reported: unknown[] = [];
    const formatted = formatFleetError({ message: 'relation "users" does not exist', path: ['me'], extensions: { code: 'WHATEVER', stacktrace: ['at db.ts:1'] } }, (e) => reported.push(e));
    expect(formatted).toEqual({ message: 'Internal server error', path: ['me'], extensions: { code: 'INTERNAL_SERVER_ERROR' } });
    expect(reported).toHaveLength(1);
  });
});
