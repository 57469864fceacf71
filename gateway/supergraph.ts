import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
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

function readConfig(configPath: string) {
  return configSchema.parse(parseYaml(readFileSync(configPath, 'utf8')));
}

export function composeSupergraph(options: ComposeOptions): string {
  const config = readConfig(options.configPath);
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

/**
 * Where the gateway's supergraph comes from, read again on a reload: a composed file
 * (`SUPERGRAPH_PATH`), or `supergraph.yaml` and the subgraph schemas it names, composed in-process.
 */
export interface SupergraphSource {
  /** The supergraph SDL as the source says now; throws when it cannot be read or does not compose. */
  load(): string;
  /** The files whose change means the supergraph may have changed. */
  files(): string[];
}

export function fileSupergraph(file: string): SupergraphSource {
  return { load: () => readFileSync(file, 'utf8'), files: () => [file] };
}

export function composedSupergraph(options: ComposeOptions): SupergraphSource {
  return {
    load: () => composeSupergraph(options),
    files: () => {
      const base = path.dirname(options.configPath);
      try {
        const config = readConfig(options.configPath);
        return [options.configPath, ...Object.values(config.subgraphs).map((s) => path.resolve(base, s.schema.file))];
      } catch {
        return [options.configPath]; // a broken config still gets watched, so fixing it reloads
      }
    },
  };
}

/**
 * Calls `onChange` when any of the source's files changes (polled: works on every file system and
 * in containers with mounted volumes, where inotify events may not arrive). Returns how to stop.
 */
export function watchSupergraph(source: SupergraphSource, onChange: () => void, intervalMs: number): () => void {
  const watched = new Set<string>();
  const listener = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) {
      follow();
      onChange();
    }
  };
  const follow = () => {
    for (const file of source.files()) {
      if (watched.has(file)) continue;
      watched.add(file);
      watchFile(file, { interval: intervalMs, persistent: false }, listener);
    }
  };
  follow();
  return () => {
    for (const file of watched) unwatchFile(file, listener);
    watched.clear();
  };
}
