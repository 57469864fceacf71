import { GraphQLError, parse, print } from 'graphql';
import { splitByEvent, toBatchQuery } from '../../gateway/subscriptions/eventPlan';

describe('toBatchQuery', () => {
  test('keeps the selection, alias and fragments; drops the arguments and variables the gateway handles', () => {
    const batch = toBatchQuery(
      parse(`subscription Feed($t: ID!, $d: ID, $after: [DeviceSequenceInput!]) {
        feed: locationUpdated(tenantId: $t, deviceId: $d, after: $after) { id ...Where device { name } }
      }
      fragment Where on Location { latitude longitude }`),
      'Feed',
    );
    expect(batch.responseKey).toBe('feed');
    expect(batch.operationName).toBe('Feed');
    expect(print(batch.document).replace(/\s+/g, ' ')).toBe(
      'query Feed($t: ID!, $d: ID) { feed: _locationEvents(tenantId: $t, deviceId: $d) { id ...Where device { name } } } fragment Where on Location { latitude longitude }',
    );
  });

  test('finds the root field through root-level fragments', () => {
    const batch = toBatchQuery(parse('subscription { ...Root } fragment Root on Subscription { locationUpdated(tenantId: "t") { id } }'), undefined);
    expect(batch.responseKey).toBe('locationUpdated');
    expect(print(batch.document)).toContain('locationUpdated: _locationEvents(tenantId: "t")');
  });
});

describe('splitByEvent', () => {
  test("item i becomes event i's result; an error is moved to its event with the path rewritten", () => {
    const result = {
      data: { feed: [{ id: 'a' }, null, { id: 'c' }] },
      errors: [new GraphQLError('nope', { path: ['feed', 1, 'device'], extensions: { code: 'NOT_FOUND' } })],
    };
    const [a, b, c] = splitByEvent(result, 3, 'feed');
    expect(a).toEqual({ result: { data: { feed: { id: 'a' } } }, transient: false });
    expect(c?.result.data).toEqual({ feed: { id: 'c' } });
    expect(b?.result.data).toBeNull();
    expect(b?.result.errors?.map((e) => [e.message, e.path, e.extensions.code])).toEqual([['nope', ['feed', 'device'], 'NOT_FOUND']]);
    expect(b?.transient).toBe(false);
  });

  test('an error with no item to blame (a failed fetch) is every event\'s, and worth retrying', () => {
    const outcomes = splitByEvent({ data: null, errors: [new GraphQLError('connect ECONNREFUSED')] }, 2, 'feed');
    expect(outcomes.map((o) => o.transient)).toEqual([true, true]);
    expect(outcomes.map((o) => o.result.data)).toEqual([null, null]);
  });

  test('a missing item without an error is never silently dropped', () => {
    const [only] = splitByEvent({ data: { feed: [] } }, 1, 'feed');
    expect(only?.transient).toBe(true);
    expect(only?.result.errors?.[0]?.extensions.code).toBe('INTERNAL_SERVER_ERROR');
  });
});
