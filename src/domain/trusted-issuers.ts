// Workload identity vocabulary: the kinds of trusted issuer, how a token's subject and claims are
// compared with a client's binding, and which keys of a fetched JWK Set may verify (a SPIFFE trust
// bundle marks JWT-SVID keys `use: "jwt-svid"`). No I/O.

export const ISSUER_KINDS = ['kubernetes', 'spiffe', 'oidc'] as const;
export type IssuerKind = (typeof ISSUER_KINDS)[number];

/** RFC 7523 §2.2: the assertion type of JWT client authentication. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Longest token looked at (platform tokens are a few kilobytes). */
export const MAX_TRUSTED_JWT_LENGTH = 16 * 1024;
/** Most keys kept of one issuer's JWK Set. */
export const MAX_ISSUER_KEYS = 100;

/** Signature algorithms a platform token may use (never HS*, never none). */
export const TRUSTED_JWT_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * The verification keys of a JWK Set: public asymmetric keys meant for signatures. A SPIFFE
 * bundle's `jwt-svid` keys count as signature keys, its `x509-svid` keys do not (SPIFFE Trust
 * Domain and Bundle §4.2.2).
 */
export function signatureKeys(jwks: unknown): Record<string, unknown>[] {
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) return [];
  const usable: Record<string, unknown>[] = [];
  for (const key of keys) {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) continue;
    const jwk = key as Record<string, unknown>;
    if (!['RSA', 'EC', 'OKP'].includes(jwk.kty as string)) continue;
    if (PRIVATE_MEMBERS.some((member) => member in jwk)) continue;
    if (jwk.use !== undefined && jwk.use !== 'sig' && jwk.use !== 'jwt-svid') continue;
    usable.push({ ...jwk, ...(jwk.use === 'jwt-svid' ? { use: 'sig' } : {}) });
    if (usable.length >= MAX_ISSUER_KEYS) break;
  }
  return usable;
}

/** The trust domain of a SPIFFE ID (`spiffe://example.org/ns/shop/sa/orders` → `example.org`). */
export function spiffeTrustDomain(id: string): string | undefined {
  const match = /^spiffe:\/\/([a-z0-9._-]{1,255})(\/[A-Za-z0-9._\-/]*)?$/.exec(id);
  return match?.[1];
}

/**
 * The issuer a token names: its `iss`, or for a JWT-SVID without one (SPIRE issues them so by
 * default), `spiffe://<trust domain>` of its subject.
 */
export function issuerOfToken(claims: { iss?: unknown; sub?: unknown }): string | undefined {
  if (typeof claims.iss === 'string' && claims.iss.length > 0 && claims.iss.length <= 2000) return claims.iss;
  if (claims.iss === undefined && typeof claims.sub === 'string') {
    const domain = spiffeTrustDomain(claims.sub);
    return domain ? `spiffe://${domain}` : undefined;
  }
  return undefined;
}

/** The first required claim the token lacks or holds another value of; undefined when all hold. */
export function mismatchedClaim(claims: Record<string, unknown>, required: Record<string, string>): string | undefined {
  for (const [name, expected] of Object.entries(required)) {
    const actual = claims[name];
    const text = typeof actual === 'string' || typeof actual === 'number' || typeof actual === 'boolean' ? String(actual) : undefined;
    if (text !== expected) return name;
  }
  return undefined;
}

/**
 * The token endpoint auth method of a client that authenticates with its platform's token
 * (RFC 7523 §2.2 with a trusted issuer's JWT). Stored as such; the provider is shown a
 * client_secret_post client whose only accepted proof is a verified assertion
 * (oidc/federated-client-auth.ts).
 */
export const FEDERATED_AUTH_METHOD = 'federated_jwt';
