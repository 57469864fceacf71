import { Supergraph } from '@apollo/federation-internals';
import { parse, type OperationDefinitionNode } from 'graphql';
import { OperationGuard } from '../../gateway/operationGuard';
import { coerceVariables, withScalars } from '../../gateway/operationInput';
import { DEFAULT_OPERATION_LIMITS as LIMITS, costError, exceedsTokenLimit } from '../../gateway/operationLimits';
import { SUPERGRAPH_CONFIG, composeSupergraph } from '../../gateway/supergraph';

/** The cost model and the input locator on the real API schema; transports are integration tests. */
const apiSchema = Supergraph.build(composeSupergraph({ configPath: SUPERGRAPH_CONFIG })).apiSchema().toGraphQLJSSchema();
const schema = withScalars(apiSchema);
const guard = new OperationGuard({ apiSchema, limits: LIMITS, introspection: true });

/** The cost the guard computes, read back from the refusal a limit of 1 gives. */
function cost(query: string, variables: Record<string, unknown> = {}): number {
  const refused = costError(schema, parse(query), undefined, variables, { ...LIMITS, maxCost: 1 });
  return Number(/found (\d+)/.exec(refused?.message ?? '')?.[1] ?? 1);
}

describe('operation cost', () => {
  const location = 'id latitude longitude recordedAt';

  test('Device.locations multiplies its selection by first, inline, by variable or by its default of 100', () => {
    const page = (args: string) => `query($n: Int) { device(id: "d") { locations${args} { edges { node { ${location} } } } } }`;
    // node: 1 + 4 fields; edges: 1 + node (counted once: the page is `first` long); locations: first × (1 + edges)
    expect(cost(page('(first: 10)'))).toBe(1 + 10 * (1 + 1 + 1 + 4));
    expect(cost(page('(first: $n)'), { n: 10 })).toBe(cost(page('(first: 10)')));
    expect(cost(page(''))).toBe(cost(page('(first: 100)')));
  });

  test('recordLocations multiplies by the number of inputs', () => {
    const inputs = (count: number) => Array.from({ length: count }, () => ({ deviceId: 'd', latitude: 1, longitude: 1 }));
    const mutation = 'mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id sequence } }';
    expect(cost(mutation, { i: inputs(1000) })).toBe(1000 * 3);
    expect(costError(schema, parse(mutation), undefined, { i: inputs(1000) }, LIMITS)).toBeUndefined();
  });

  test('lists the client cannot bound count assumedListSize items, nested lists multiply', () => {
    expect(cost('{ devices { id } }')).toBe(LIMITS.assumedListSize * 2);
    expect(cost('{ tenants { devices { id } } }')).toBe(LIMITS.assumedListSize * (1 + LIMITS.assumedListSize * 2));
  });

  test('the richest real query is well within the bound; a page of 1000 per device is far past it', () => {
    const rich = `{ me { tenant { members { id email } devices { id name lastLocation { ${location} } } } }
      device(id: "d") { locations(first: 1000) { edges { cursor node { ${location} } } pageInfo { hasNextPage endCursor } } } }`;
    expect(cost(rich)).toBeLessThan(LIMITS.maxCost / 4);
    expect(cost(`{ devices { locations(first: 1000) { edges { node { id } } } } }`)).toBeGreaterThan(LIMITS.maxCost * 3);
  });

  test('a fragment bomb is a cost overrun, not a crash', () => {
    const levels = Array.from({ length: 20 }, (_, i) => `fragment F${i} on Device { ...F${i + 1} ...F${i + 1} }`).join(' ');
    const bomb = parse(`query($d: ID!) { device(id: $d) { ...F0 } } ${levels} fragment F20 on Device { id }`);
    expect(costError(schema, bomb, undefined, { d: 'x' }, LIMITS)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
  });
});

test('tokens are counted as graphql-js counts them when it enforces maxTokens', () => {
  const tokens = (count: number) => `{ me { ${'id '.repeat(count - 5)}} }`; // `{ me {` and `} }` are 5 tokens
  const limits = { ...LIMITS, maxTokens: 10 };
  expect(() => parse(tokens(10), { maxTokens: 10 })).not.toThrow();
  expect(exceedsTokenLimit(tokens(10), limits)).toBe(false);
  expect(() => parse(tokens(11), { maxTokens: 10 })).toThrow(/more that 10 tokens/);
  expect(exceedsTokenLimit(tokens(11), limits)).toBe(true);
  expect(exceedsTokenLimit('{ me { id ', limits)).toBe(false); // a plain syntax error
});

describe('variable errors name the input field and list item', () => {
  const operationOf = (query: string) => {
    const document = parse(query);
    return { document, operation: document.definitions[0] as OperationDefinitionNode };
  };
  const errorFor = (query: string, variables: Record<string, unknown>) => {
    const { document, operation } = operationOf(query);
    const result = coerceVariables(schema, document, operation, variables, false);
    return 'error' in result ? result.error.extensions : undefined;
  };

  test('inside a list variable: the field and the index from the value path', () => {
    const inputs = [0, 1, 2, 3].map((i) => ({ deviceId: 'd', latitude: 1, longitude: 1, recordedAt: i === 3 ? 'soon' : '2026-01-01T00:00:00Z' }));
    expect(errorFor('mutation($i: [LocationInput!]!) { recordLocations(inputs: $i) { id } }', { i: inputs })).toMatchObject({ field: 'recordedAt', index: 3 });
  });

  test('a whole variable: where it is used, with the item of an inline list it sits in', () => {
    expect(errorFor('mutation($i: LocationInput!) { recordLocation(input: $i) { id } }', {})).toMatchObject({ field: 'input' });
    const inline = 'mutation($t: DateTime) { recordLocations(inputs: [{ deviceId: "d", latitude: 1, longitude: 1 }, { deviceId: "d", latitude: 1, longitude: 1, recordedAt: $t }]) { id } }';
    expect(errorFor(inline, { t: 'later' })).toEqual({ code: 'BAD_USER_INPUT', field: 'recordedAt', index: 1, http: { status: 400 } });
  });

  test('valid DateTimes coerce to Dates', () => {
    const { document, operation } = operationOf('query($from: DateTime) { device(id: "d") { locations(from: $from) { edges { cursor } } } }');
    expect(coerceVariables(schema, document, operation, { from: '2026-01-01T00:00:00+02:00' }, false)).toEqual({ variables: { from: new Date('2025-12-31T22:00:00Z') } });
  });
});

test('the socket check hands back errors as a client sees them, without the HTTP status', () => {
  const refused = guard.check({ query: 'mutation { recordLocation(input: { deviceId: "d", latitude: 1, longitude: 1, recordedAt: "soon" }) { id } }' });
  expect(Array.isArray(refused) && refused.map((e) => e.extensions)).toEqual([{ code: 'BAD_USER_INPUT', field: 'recordedAt' }]);
});
