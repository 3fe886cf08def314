// Token exchange (RFC 8693) vocabulary: its grant and token type identifiers, the `act` claim,
// and the lineage an exchanged token carries so that revoking anything it came from (a token, a
// person's grant, a client in the chain) makes it inactive too. Pure computation.
import { createHash } from 'node:crypto';

/** RFC 8693 §2.1. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** RFC 8693 §3: the token types Postern knows. */
export const TOKEN_TYPES = {
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
} as const;

/** RFC 8693 §4.1: the acting party, and before it (nested) the parties that acted earlier. */
export interface ActClaim { sub: string; act?: ActClaim; [claim: string]: unknown }

/**
 * What an exchanged token came from, in its claims (`lin`): the revocation-list keys of every
 * token of the chain before it (`t`), and the client each of those tokens was issued to (`c`,
 * the first one's first). Checked at every introspection against the revocation list and the
 * clients as they are now, on every process, without a database read.
 */
export interface Lineage { t: string[]; c: string[] }

/** How many exchanges deep `act` goes (0 for a token that names no actor). */
export function actDepth(act: unknown): number {
  let depth = 0;
  let current = act;
  while (current && typeof current === 'object' && depth < 100) {
    depth += 1;
    current = (current as { act?: unknown }).act;
  }
  return depth;
}

/**
 * The actors of a delegated token, outermost (the current actor) first: the `sub` of each level
 * of `act` (RFC 8693 §4.1). Empty for a token that names no actor or whose `act` is malformed.
 */
export function actorChain(act: unknown): string[] {
  if (!isActClaim(act)) return [];
  const actors: string[] = [];
  for (let current: ActClaim | undefined = act; current; current = current.act) actors.push(current.sub);
  return actors;
}

/** A well-formed `act`: nested objects, each with a string `sub`. */
export function isActClaim(value: unknown): value is ActClaim {
  let current = value;
  for (let depth = 0; depth < 100; depth += 1) {
    if (!current || typeof current !== 'object' || Array.isArray(current)) return false;
    const { sub, act } = current as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string') return false;
    if (act === undefined) return true;
    current = act;
  }
  return false;
}

/**
 * The revocation-list key of an opaque token: a digest, never the token itself (a bearer value
 * is not stored as presented).
 */
export function opaqueTokenKey(value: string): string {
  return `opaque:${createHash('sha256').update(`access-token:${value}`, 'utf8').digest('base64url').slice(0, 32)}`;
}

/** A well-formed lineage claim, bounded. */
export function isLineage(value: unknown): value is Lineage {
  if (!value || typeof value !== 'object') return false;
  const { t, c } = value as { t?: unknown; c?: unknown };
  const strings = (list: unknown) => Array.isArray(list) && list.length <= 64 && list.every((item) => typeof item === 'string');
  return strings(t) && strings(c);
}
