import { readFileSync } from 'node:fs';
import path from 'node:path';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * Composes the supergraph from `supergraph.yaml` (rover's config format) with
 * @apollo/composition, in-process: rover's binary cannot be downloaded everywhere this runs.
 */
const configSchema = z.object({
  federation_version: z.string().optional(),
  subgraphs: z.record(
    z.string(),
    z.object({ routing_url: z.string().url(), schema: z.object({ file: z.string() }) }),
  ),
});

export class CompositionError extends Error {
  constructor(readonly messages: string[]) {
    super(`supergraph composition failed:\n  ${messages.join('\n  ')}`);
    this.name = 'CompositionError';
  }
}

export interface ComposeOptions {
  configPath: string;
  /** Routing URLs that replace the file's, by subgraph name (deployments and tests on other ports). */
  routingUrls?: Partial<Record<string, string>>;
}

export function composeSupergraph(options: ComposeOptions): string {
  const config = configSchema.parse(parseYaml(readFileSync(options.configPath, 'utf8')));
  const base = path.dirname(options.configPath);
  const services = Object.entries(config.subgraphs).map(([name, subgraph]) => ({
    name,
    url: options.routingUrls?.[name] ?? subgraph.routing_url,
    typeDefs: parse(readFileSync(path.resolve(base, subgraph.schema.file), 'utf8')),
  }));
  const result = composeServices(services);
  if (result.errors) throw new CompositionError(result.errors.map((e) => e.message));
  return result.supergraphSdl;
}

export const SUPERGRAPH_CONFIG = path.resolve(__dirname, '..', 'supergraph.yaml');
