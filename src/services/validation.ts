// Input rules shared by every service (and so by the CLI and the admin API).
import { MAX_RESOURCE_LENGTH } from '../domain/parameter-limits.ts';
import { invalid } from './errors.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]{1,128}$/;

export function checkName(value: string, field = 'name'): string {
  if (!NAME.test(value)) {
    throw invalid(`${field} must be 1-100 characters of letters, digits, ".", "_" or "-", starting with a letter or digit`, field);
  }
  return value;
}

export function checkScopes(values: readonly string[], field = 'scopes'): string[] {
  const scopes = [...new Set(values.flatMap((value) => value.split(/\s+/)).filter(Boolean))];
  for (const scope of scopes) {
    if (!SCOPE_TOKEN.test(scope)) throw invalid(`invalid scope "${scope}" (RFC 6749 §3.3 scope token)`, field);
  }
  return scopes;
}

/** RFC 8707 §2: an absolute URI without a fragment (not longer than requests may name). */
export function checkResourceIdentifier(value: string, field = 'identifier'): string {
  if (value.length > MAX_RESOURCE_LENGTH) throw invalid(`${field} must be at most ${MAX_RESOURCE_LENGTH} characters`, field);
  const url = URL.parse(value);
  if (!url || value.includes('#') || !/^[a-z][a-z0-9+.-]*:/i.test(value) || /\s/.test(value)) {
    throw invalid(`${field} must be an absolute URI without a fragment, like https://orders.internal`, field);
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && !url.hostname) {
    throw invalid(`${field} must name a host`, field);
  }
  return value;
}

export function checkTtl(value: number, field = 'ttl'): number {
  if (!Number.isInteger(value) || value < 1 || value > 86400) {
    throw invalid(`${field} must be a whole number of seconds between 1 and 86400`, field);
  }
  return value;
}

/** The names of the fields an update sets (for the audit log: which, never their values). */
export function changedFields(input: object): string[] {
  return Object.entries(input).filter(([, value]) => value !== undefined
    && !(Array.isArray(value) && value.length === 0)).map(([key]) => key);
}

/**
 * A token can be bound to one key only: a DPoP key or the TLS certificate (the provider refuses a
 * client that requires both, and could never issue it a token).
 */
export function checkOneBinding(requireDpop: boolean, requireMtls: boolean, what: 'a client' | 'an API' = 'a client'): void {
  if (requireDpop && requireMtls) {
    throw invalid(`${what}'s tokens can be bound to a DPoP key or to a TLS certificate, not both: `
      + 'lift one requirement (--no-require-dpop or --no-require-mtls)', 'requireDpop', 'requireMtls');
  }
}
