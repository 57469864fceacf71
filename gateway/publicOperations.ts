import { Kind, getOperationAST, parse, type DocumentNode, type SelectionSetNode } from 'graphql';

/**
 * The mutations anyone may call (CONTRACT.md: register, login, refreshSession, and the account
 * confirmation the README documents). Clients attach `Authorization` to every request, so a request
 * made ONLY of these runs as anonymous when its token does not verify: a client must be able to
 * refresh the very token that expired.
 */
export const PUBLIC_MUTATIONS: ReadonlySet<string> = new Set(['register', 'login', 'refreshSession', 'confirmRegistration', 'resendConfirmationCode']);

const PARSED_CACHE_SIZE = 1000;
const parsed = new Map<string, DocumentNode | null>();

function parseCached(query: string): DocumentNode | null {
  let document = parsed.get(query);
  if (document === undefined) {
    try {
      document = parse(query);
    } catch {
      document = null; // Apollo answers the parse error itself
    }
    if (parsed.size >= PARSED_CACHE_SIZE) parsed.delete(parsed.keys().next().value as string);
    parsed.set(query, document);
  }
  return document;
}

/** True when the operation that would run is a mutation selecting only public mutations. */
export function isPublicOnly(query: unknown, operationName: unknown): boolean {
  if (typeof query !== 'string') return false;
  const document = parseCached(query);
  if (!document) return false;
  const operation = getOperationAST(document, typeof operationName === 'string' ? operationName : undefined);
  if (operation?.operation !== 'mutation') return false;
  const fragments = new Map(document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d.selectionSet] as const] : [])));
  const onlyPublic = (selectionSet: SelectionSetNode, seen: Set<string>): boolean =>
    selectionSet.selections.every((selection) => {
      if (selection.kind === Kind.FIELD) return selection.name.value === '__typename' || PUBLIC_MUTATIONS.has(selection.name.value);
      if (selection.kind === Kind.INLINE_FRAGMENT) return onlyPublic(selection.selectionSet, seen);
      const fragment = fragments.get(selection.name.value);
      if (!fragment || seen.has(selection.name.value)) return false;
      return onlyPublic(fragment, new Set([...seen, selection.name.value]));
    });
  return onlyPublic(operation.selectionSet, new Set());
}
