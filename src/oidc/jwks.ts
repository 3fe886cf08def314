// What oidc-provider is given of the published signing keys (src/domain/signing-keys.ts): the
// keys it signs and verifies with, the JWKS it serves, and when a changed key set needs a new
// provider.
import type { JWK } from 'jose';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { KeySet } from '../domain/signing-keys.ts';

/** Identifies what a provider built from this set would do; equal sets need no new provider. */
export function describeKeySet(set: KeySet): string {
  return JSON.stringify(set.keys.map((key) => [key.kid, key.state, key.signs, key.privateJwk !== undefined]));
}

/**
 * The `jwks` option of the provider: every published key it can open, the signing key of each type
 * first. The provider signs with the first key of the wanted type that allows `sign`
 * (KeyStore.selectForSign filters on kty, crv, use and key_ops, then sorts stably), so the others
 * carry key_ops ["verify"]: a `next` key is held for verification but never signs.
 */
export function providerJwks(set: KeySet): JWK[] {
  const held = set.keys.filter((key) => key.privateJwk !== undefined);
  return [
    ...held.filter((key) => key.signs).map((key) => ({ ...key.privateJwk! })),
    ...held.filter((key) => !key.signs).map((key) => ({ ...key.privateJwk!, key_ops: ['verify'] })),
  ];
}

/**
 * Serves every published key in the JWKS, including those this process cannot open, and tells
 * clients how long they may cache it: less than the propagation delay, so that a client holding
 * a cached set has fetched the next key before it signs anything.
 */
export function publishJwks(keys: KeySet, maxAgeSeconds: number) {
  const body = { keys: keys.keys.map((key) => key.publicJwk) };
  return async (ctx: KoaContextWithOIDC, next: () => Promise<void>) => {
    await next();
    if (ctx.oidc?.route !== 'jwks' || ctx.status !== 200) return;
    ctx.body = body;
    ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
  };
}
