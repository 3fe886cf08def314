// What the fast paths (client-credentials-fast-path.ts, exchange-fast-path.ts) issue: a JWT access
// token signed with the key the provider signs with, its header as the provider writes it.
import { randomBytes } from 'node:crypto';
import { CompactSign, importJWK, type CryptoKey, type KeyObject } from 'jose';
import type { KeySet } from '../domain/signing-keys.ts';

export type SigningKey = { alg: string; kid: string; key: Promise<CryptoKey | KeyObject | Uint8Array> };

/** The key the provider signs `alg` with: the signing key of that type (providerJwks). */
export function signingKeys(set: KeySet): Map<string, SigningKey> {
  const keys = new Map<string, SigningKey>();
  for (const key of set.keys) {
    if (!key.signs || !key.privateJwk || keys.has(key.alg)) continue;
    const loaded = importJWK(key.privateJwk, key.alg);
    loaded.catch(() => {}); // a key that does not load sends its requests to the provider
    keys.set(key.alg, { alg: key.alg, kid: key.kid, key: loaded });
  }
  return keys;
}

/** The loaded key of `signing`; undefined when it did not load (the provider answers then). */
export async function loadedKey(signing: SigningKey | undefined): Promise<CryptoKey | KeyObject | Uint8Array | undefined> {
  try {
    return signing ? await signing.key : undefined;
  } catch {
    return undefined;
  }
}

/** A token id as long as the provider's (43 characters, 256 bits). */
export const tokenId = () => randomBytes(32).toString('base64url');

/** The compact JWS of `payload`, with the header the provider gives access tokens. */
export function signAccessToken(signing: SigningKey, key: CryptoKey | KeyObject | Uint8Array, payload: object): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: signing.alg, typ: 'at+jwt', kid: signing.kid })
    .sign(key);
}
