// Input rules for how a client authenticates and where from: private_key_jwt public keys
// (`jwks` or `jwks_uri`), certificate subjects and self-signed certificates (RFC 8705), network
// allow-lists, and the metadata each method stores. Used by createClient and updateClient, so
// the CLI and the admin API refuse the same things.
import ipaddr from 'ipaddr.js';
import { isLoopbackHost, normalizeCidr } from '../domain/networks.ts';
import {
  certificateThumbprint, parseCertificate, parseDistinguishedName, pemCertificates, TLS_SUBJECT_FIELDS, type TlsSubject, type TlsSubjectField,
} from '../domain/certificates.ts';

export { pemCertificates };
import { CLIENT_AUTH_ALGS, CLIENT_KEY_TYPES } from '../domain/client-keys.ts';
import { invalid } from './errors.ts';

/** Private members of a JWK (RFC 7518 §6): a client registers public keys only. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MAX_KEYS = 20;
const MAX_NETWORKS = 100;

export interface ClientJwks { keys: Record<string, unknown>[] }

/**
 * A JWK Set of public, asymmetric signature keys (RFC 7517 §5). Keys are checked for shape here
 * and verified by the provider when an assertion arrives (RFC 7523 §3).
 */
export function checkClientJwks(value: unknown, field = 'jwks'): ClientJwks {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Array.isArray(keys)) {
    throw invalid(`${field} must be a JWK Set: {"keys": [...]}`, field);
  }
  if (keys.length === 0 || keys.length > MAX_KEYS) throw invalid(`${field} must hold 1 to ${MAX_KEYS} keys`, field);
  const kids = new Set<string>();
  const checked = keys.map((key, index) => {
    const where = `${field}: key ${index + 1}`;
    if (typeof key !== 'object' || key === null || Array.isArray(key)) throw invalid(`${where} is not a JWK object`, field);
    const jwk = key as Record<string, unknown>;
    if (!(CLIENT_KEY_TYPES as readonly unknown[]).includes(jwk.kty)) {
      throw invalid(`${where} has kty "${String(jwk.kty)}"; only asymmetric keys (${CLIENT_KEY_TYPES.join(', ')}) are accepted`, field);
    }
    const leaked = PRIVATE_MEMBERS.filter((member) => member in jwk);
    if (leaked.length) {
      // Refuse rather than strip: whoever sent it has exposed a private key and should replace it.
      throw invalid(`${where} contains private key material (${leaked.join(', ')}); register the public key only`, field);
    }
    if (jwk.alg !== undefined && !(CLIENT_AUTH_ALGS as readonly unknown[]).includes(jwk.alg)) {
      throw invalid(`${where} has alg "${String(jwk.alg)}"; accepted: ${CLIENT_AUTH_ALGS.join(', ')}`, field);
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') throw invalid(`${where} has use "${String(jwk.use)}"; it must be "sig"`, field);
    if (jwk.kid !== undefined) {
      if (typeof jwk.kid !== 'string' || !jwk.kid) throw invalid(`${where} has an invalid kid`, field);
      if (kids.has(jwk.kid)) throw invalid(`${where} repeats kid "${jwk.kid}"`, field);
      kids.add(jwk.kid);
    }
    const required = jwk.kty === 'RSA' ? ['n', 'e'] : ['crv', 'x', ...(jwk.kty === 'EC' ? ['y'] : [])];
    const missing = required.filter((member) => typeof jwk[member] !== 'string' || !jwk[member]);
    if (missing.length) throw invalid(`${where} lacks ${missing.join(', ')}`, field);
    return jwk;
  });
  return { keys: checked };
}

/**
 * Where the provider fetches the client's keys. https, or http on a loopback host (development);
 * registered by an administrator, so internal addresses are allowed (docs/cli.md).
 */
export function checkJwksUri(value: string, field = 'jwksUri'): string {
  const url = URL.parse(value);
  if (!url || url.username || url.password || url.hash || !url.hostname) {
    throw invalid(`${field} must be an absolute https URL without credentials or fragment`, field);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw invalid(`${field} must use https (plain http only on a loopback host)`, field);
  }
  return url.href;
}

/**
 * CIDR ranges (RFC 4632; RFC 4291 §2.3 for IPv6), normalized ("10.1.2.3/8" becomes
 * "10.0.0.0/8"). A bare address is a single host (/32 or /128).
 */
export function checkNetworks(values: readonly string[], field = 'allowedNetworks'): string[] {
  const networks = new Set<string>();
  for (const raw of values.flatMap((value) => value.split(/[\s,]+/)).filter(Boolean)) {
    const network = normalizeCidr(raw);
    if (!network) throw invalid(`"${raw}" is not an IPv4 or IPv6 network in CIDR notation (like 10.0.0.0/8 or fd00::/8)`, field);
    networks.add(network);
  }
  if (networks.size > MAX_NETWORKS) throw invalid(`at most ${MAX_NETWORKS} networks per client`, field);
  return [...networks];
}

// ---- mutual TLS (RFC 8705 §2)

const MAX_CERTIFICATES = 20;

/**
 * The subject a tls_client_auth client must present: one of the subject DN or a SAN entry
 * (RFC 8705 §2.1.2), checked for form and stored as written (an IP address normalized).
 */
export function checkTlsSubject(value: unknown, field = 'tlsSubject'): TlsSubject {
  const subject = value as Partial<TlsSubject> | null;
  if (typeof subject !== 'object' || subject === null || !(String(subject.field) in TLS_SUBJECT_FIELDS)) {
    throw invalid(`${field} must name one of ${Object.keys(TLS_SUBJECT_FIELDS).join(', ')} with its value`, field);
  }
  const kind = subject.field as TlsSubjectField;
  const text = typeof subject.value === 'string' ? subject.value.trim() : '';
  if (!text || text.length > 1000) throw invalid(`${field}: the ${kind} value must be 1 to 1000 characters`, field);
  switch (kind) {
    case 'subject_dn':
      try {
        parseDistinguishedName(text);
      } catch (error) {
        throw invalid(`${field}: "${text}" is not a distinguished name (RFC 4514): ${(error as Error).message}`, field);
      }
      return { field: kind, value: text };
    case 'san_dns':
      if (!/^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/.test(text)) {
        throw invalid(`${field}: "${text}" is not a DNS name (wildcards are not matched)`, field);
      }
      return { field: kind, value: text.toLowerCase() };
    case 'san_ip':
      try {
        return { field: kind, value: ipaddr.process(text).toString() };
      } catch {
        throw invalid(`${field}: "${text}" is not an IPv4 or IPv6 address`, field);
      }
    case 'san_email':
      if (!/^[^\s@]+@[^\s@]+$/.test(text)) throw invalid(`${field}: "${text}" is not an email address`, field);
      return { field: kind, value: text };
    case 'san_uri':
      if (!URL.parse(text)?.protocol) throw invalid(`${field}: "${text}" is not an absolute URI`, field);
      return { field: kind, value: text };
  }
}

/**
 * The certificates of a self_signed_tls_client_auth client (PEM), registered as a JWK Set with
 * each certificate in `x5c` (RFC 8705 §2.2.2): the provider matches the presented certificate
 * by its SHA-256 thumbprint. Expired certificates are refused.
 */
export function checkClientCertificates(values: readonly string[], field = 'certificates', now = Date.now()): ClientJwks {
  if (values.length === 0 || values.length > MAX_CERTIFICATES) throw invalid(`${field} must hold 1 to ${MAX_CERTIFICATES} certificates`, field);
  const seen = new Set<string>();
  const keys = values.map((pem, index) => {
    const where = `${field}: certificate ${index + 1}`;
    const cert = typeof pem === 'string' ? parseCertificate(pem) : undefined;
    if (!cert) throw invalid(`${where} is not a PEM certificate`, field);
    if (Date.parse(cert.validTo) < now) throw invalid(`${where} expired on ${new Date(cert.validTo).toISOString()}`, field);
    const thumbprint = certificateThumbprint(cert);
    if (seen.has(thumbprint)) throw invalid(`${where} is listed twice`, field);
    seen.add(thumbprint);
    let jwk: Record<string, unknown>;
    try {
      jwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
    } catch {
      // DSA keys and curves a JWK cannot name (brainpool, ...).
      throw invalid(`${where} has a key type a JWK cannot carry; use an EC (P-256, P-384, P-521), RSA or Ed25519 key`, field);
    }
    // Every key Node exports as a JWK is EC, RSA or OKP today; this holds if that changes.
    // Stryker disable next-line ConditionalExpression: unreachable with today's Node (see above).
    if (!(CLIENT_KEY_TYPES as readonly unknown[]).includes(jwk.kty)) {
      throw invalid(`${where} has a ${String(jwk.kty)} key; accepted: ${CLIENT_KEY_TYPES.join(', ')}`, field);
    }
    return { ...jwk, kid: thumbprint, 'x5t#S256': thumbprint, x5c: [cert.raw.toString('base64')] };
  });
  return { keys };
}

/** What a client view says of its certificates (self_signed_tls_client_auth). */
export function describeClientCertificates(jwks: ClientJwks | undefined): { thumbprint: string; subject: string; expiresAt: string }[] {
  // Stryker disable next-line ArrayDeclaration: an entry without a certificate is skipped anyway.
  return (jwks?.keys ?? []).flatMap((key) => {
    const der = Array.isArray(key.x5c) && typeof key.x5c[0] === 'string' ? key.x5c[0] : undefined;
    const cert = der ? parseCertificate(der) : undefined;
    return cert ? [{
      thumbprint: certificateThumbprint(cert),
      subject: cert.subject.split('\n').reverse().join(','),
      expiresAt: new Date(cert.validTo).toISOString(),
    }] : [];
  });
}

/** How a client proves itself beyond its auth method; each field goes with one method. */
export interface ClientCredentialsInput {
  /** private_key_jwt: public keys (a JWK Set), or where to fetch them; exactly one of the two. */
  jwks?: unknown;
  jwksUri?: string;
  /** tls_client_auth: the subject DN or SAN entry its certificate carries. */
  tlsSubject?: TlsSubject;
  /** self_signed_tls_client_auth: its certificates (PEM). */
  certificates?: string[];
}

/** Only the credential fields of an input (the rules below look at which are present). */
export const credentialsOf = ({ jwks, jwksUri, tlsSubject, certificates }: ClientCredentialsInput): ClientCredentialsInput =>
  ({ jwks, jwksUri, tlsSubject, certificates });

export const CREDENTIAL_PROPERTIES = ['jwks', 'jwks_uri', ...Object.values(TLS_SUBJECT_FIELDS)] as const;

/**
 * The metadata that says how a client proves itself beyond its method: private_key_jwt keys, a
 * tls_client_auth subject, self-signed certificates; each only with its method.
 */
export function credentialMetadata(authMethod: string, given: ClientCredentialsInput): Record<string, unknown> {
  const present = (Object.keys(given) as (keyof ClientCredentialsInput)[]).filter((key) => given[key] !== undefined);
  const allowed: Record<string, (keyof ClientCredentialsInput)[]> = {
    private_key_jwt: ['jwks', 'jwksUri'],
    tls_client_auth: ['tlsSubject'],
    self_signed_tls_client_auth: ['certificates', 'jwksUri'],
  };
  // Stryker disable next-line ArrayDeclaration: no credential field is named like a made-up entry.
  const stray = present.find((key) => !(allowed[authMethod] ?? []).includes(key));
  if (stray) {
    const owner = Object.entries(allowed).filter(([, keys]) => keys.includes(stray)).map(([method]) => method).join(' or ');
    throw invalid(`${stray} is for ${owner} clients`, stray);
  }
  switch (authMethod) {
    case 'private_key_jwt':
      if ((given.jwks === undefined) === (given.jwksUri === undefined)) {
        throw invalid('a private_key_jwt client needs exactly one of jwks (its public keys) or jwksUri', 'jwks', 'jwksUri');
      }
      return given.jwks !== undefined ? { jwks: checkClientJwks(given.jwks) } : { jwks_uri: checkJwksUri(given.jwksUri!) };
    case 'tls_client_auth': {
      if (given.tlsSubject === undefined) {
        throw invalid('a tls_client_auth client needs the subject DN or a SAN entry its certificate carries (tlsSubject)', 'tlsSubject');
      }
      const subject = checkTlsSubject(given.tlsSubject);
      return { [TLS_SUBJECT_FIELDS[subject.field]]: subject.value };
    }
    case 'self_signed_tls_client_auth':
      if ((given.certificates === undefined) === (given.jwksUri === undefined)) {
        throw invalid('a self_signed_tls_client_auth client needs exactly one of certificates (PEM) or jwksUri', 'certificates', 'jwksUri');
      }
      return given.certificates !== undefined
        ? { jwks: checkClientCertificates(given.certificates) }
        : { jwks_uri: checkJwksUri(given.jwksUri!) };
    default:
      return {};
  }
}
