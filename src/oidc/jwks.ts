// What oidc-provider is given of the published signing keys (src/domain/signing-keys.ts): the
// keys it signs and verifies with, and when a changed key set needs a new provider.
import type { JWK } from 'jose';
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
