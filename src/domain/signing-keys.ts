// Signing keys: which algorithms we sign with, how keys are made, and the states a key passes
// through (docs/keys.md). What the provider is given of them is oidc/jwks.ts.
// jose is loaded when keys are made: the CLI names these algorithms in every command.
import type { JWK } from 'jose';
import { randomId } from './crypto.ts';

/** Algorithms an API may choose for its JWT access tokens. ES256 is the default (fast, small). */
export const ACCESS_TOKEN_ALGS = ['ES256', 'EdDSA', 'RS256', 'PS256'] as const;
export type AccessTokenAlg = (typeof ACCESS_TOKEN_ALGS)[number];
export const DEFAULT_ACCESS_TOKEN_ALG: AccessTokenAlg = 'ES256';

/** One key per key type covers every algorithm above (RS256 and PS256 share the RSA key). */
const KEY_SPECS = [
  { alg: 'ES256', options: {} },
  { alg: 'RS256', options: { modulusLength: 2048 } },
  { alg: 'EdDSA', options: { crv: 'Ed25519' } },
] as const;

export interface PrivateKey { kid: string; alg: string; privateJwk: JWK }

export async function generateSigningKeys(): Promise<PrivateKey[]> {
  const { exportJWK, generateKeyPair } = await import('jose');
  return Promise.all(KEY_SPECS.map(async ({ alg, options }) => {
    const { privateKey } = await generateKeyPair(alg, { ...options, extractable: true });
    const kid = randomId();
    const jwk = await exportJWK(privateKey);
    // No `alg` on the JWK: the RSA key serves RS256 (ID tokens) and PS256 alike.
    return { kid, alg, privateJwk: { ...jwk, kid, use: 'sig' } };
  }));
}

/** The public half of a private JWK. */
export function publicJwk(jwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, ...rest } = jwk as JWK & { oth?: unknown };
  return rest;
}

/**
 * The longest a token signed by Postern stays valid: access tokens live at most 86400 s (the upper
 * bound of an API's access-token lifetime) and ID tokens 3600 s (TTL.IdToken in provider.ts), plus
 * five minutes for verifiers whose clocks run slow. A key stays published this long after it stops
 * signing, so every token it signed can still be verified until it expires.
 */
export const SIGNED_TOKEN_MAX_LIFETIME_SECONDS = 86400 + 300;

/** A key's place in its life (docs/keys.md). Only `retired` keys are unpublished. */
export type KeyState = 'next' | 'active' | 'retiring' | 'retired';

export interface PublishedKey {
  kid: string;
  alg: string;
  state: Exclude<KeyState, 'retired'>;
  publicJwk: JWK;
  /** Undefined when this process's master key cannot open it (it can still publish and verify). */
  privateJwk: JWK | undefined;
  /** The one key of its type that signs. */
  signs: boolean;
}

/** The keys a server publishes, verifies with and signs with, at one moment. */
export interface KeySet {
  /** Signing keys first, then `next`, then `retiring` ones. */
  keys: PublishedKey[];
  /** When time alone changes this set (epoch ms): the next activation, retirement or removal. */
  changesAt: number | undefined;
  /** Published keys this process's master key cannot open (published and verified with, never signing). */
  unopened: string[];
}
