// Input rules for how a client authenticates and where from: private_key_jwt public keys
// (`jwks` or `jwks_uri`) and network allow-lists. Used by createClient and updateClient, so the
// CLI and the admin API refuse the same things.
import ipaddr from 'ipaddr.js';
import { isLoopbackHost } from '../config.ts';
import { CLIENT_AUTH_ALGS, CLIENT_KEY_TYPES } from '../oidc/client-keys.ts';
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
    let range: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      range = raw.includes('/') ? ipaddr.parseCIDR(raw) : [ipaddr.parse(raw), ipaddr.parse(raw).kind() === 'ipv4' ? 32 : 128];
    } catch {
      throw invalid(`"${raw}" is not an IPv4 or IPv6 network in CIDR notation (like 10.0.0.0/8 or fd00::/8)`, field);
    }
    let [address, bits] = range;
    // An IPv4-mapped IPv6 range means the IPv4 one; connections are compared the same way.
    if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      address = (address as ipaddr.IPv6).toIPv4Address();
      bits -= 96;
    }
    const network = address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${address.toString()}/${bits}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${address.toString()}/${bits}`);
    networks.add(`${network.toString()}/${bits}`);
  }
  if (networks.size > MAX_NETWORKS) throw invalid(`at most ${MAX_NETWORKS} networks per client`, field);
  return [...networks];
}
