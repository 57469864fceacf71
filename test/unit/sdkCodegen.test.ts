import { readFileSync } from 'node:fs';
import { GENERATED_FILE, SCHEMA_FILE, apiSchemaSdl, generatedCode } from '../../clients/sdk/codegen';

/**
 * The SDK is generated from the supergraph and committed: a schema or document change that was not
 * followed by `npm run codegen` fails here, so the API cannot change without its SDK.
 */
test('clients/sdk/schema.graphql is the current supergraph API schema (run `npm run codegen`)', () => {
  expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(apiSchemaSdl());
});

test('clients/sdk/src/graphql.ts is what codegen makes of the schema and documents (run `npm run codegen`)', async () => {
  expect(readFileSync(GENERATED_FILE, 'utf8')).toBe(await generatedCode());
});

test('the schema the SDK is generated from hides the internal fields', () => {
  const sdl = readFileSync(SCHEMA_FILE, 'utf8');
  expect(sdl).toContain('locationUpdated(tenantId: ID!, deviceId: ID, after: [DeviceSequenceInput!]): Location!');
  expect(sdl).not.toMatch(/_locationEvents|_locationsBetween|_devicePositions|@inaccessible|join__/);
});
