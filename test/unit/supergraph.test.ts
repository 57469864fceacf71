import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CompositionError, SUPERGRAPH_CONFIG, composeSupergraph } from '../../gateway/supergraph';

describe('composing supergraph.yaml', () => {
  test('the three subgraphs compose, with the subscription and routing URL overrides', () => {
    const sdl = composeSupergraph({ configPath: SUPERGRAPH_CONFIG, routingUrls: { location: 'http://location.internal:4003/graphql' } });
    expect(sdl).toContain('locationUpdated(tenantId: ID!, deviceId: ID, after: [DeviceSequenceInput!]): Location!');
    expect(sdl).toContain('url: "http://location.internal:4003/graphql"');
    expect(sdl).toContain('url: "http://localhost:4001/graphql"');
  });

  test("a composition error stops with the composer's messages", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'supergraph-'));
    writeFileSync(path.join(dir, 'a.graphql'), 'type Query { thing: Thing } type Thing @key(fields: "id") { id: ID! name: String }');
    writeFileSync(path.join(dir, 'b.graphql'), 'type Query { other: Int } type Thing @key(fields: "id") { id: ID! name: Int }');
    writeFileSync(
      path.join(dir, 'supergraph.yaml'),
      'subgraphs:\n  a:\n    routing_url: http://a/graphql\n    schema: { file: ./a.graphql }\n  b:\n    routing_url: http://b/graphql\n    schema: { file: ./b.graphql }\n',
    );
    expect(() => composeSupergraph({ configPath: path.join(dir, 'supergraph.yaml') })).toThrow(CompositionError);
    expect(() => composeSupergraph({ configPath: path.join(dir, 'supergraph.yaml') })).toThrow(/Thing\.name/);
  });
});
