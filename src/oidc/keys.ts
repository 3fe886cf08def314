// Signing keys: which algorithms we sign with, how keys are made, and the JWKS given to the provider.
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { randomId } from '../crypto.ts';

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
