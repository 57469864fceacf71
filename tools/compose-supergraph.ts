import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { CompositionError, SUPERGRAPH_CONFIG, composeSupergraph } from '../gateway/supergraph';

// `npm run compose [-- out.graphql]`: writes the supergraph SDL (default ./supergraph.graphql).
const out = path.resolve(process.argv[2] ?? 'supergraph.graphql');
try {
  writeFileSync(out, composeSupergraph({ configPath: SUPERGRAPH_CONFIG }));
  process.stdout.write(`supergraph written to ${out}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof CompositionError ? error.message : String(error)}\n`);
  process.exit(1);
}
