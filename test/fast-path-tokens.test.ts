// The tokens the fast paths sign with node:crypto (src/oidc/fast-path-tokens.ts): for each key
// type the provider signs access tokens with, the compact JWS must verify with jose against the
// published key, carry the header the provider writes (byte for byte as jose encodes it), and
// hold the payload unchanged; token ids must be the provider's length and never repeat.
import { CompactSign, compactVerify, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { generateSigningKeys, type KeySet } from '../src/domain/signing-keys.ts';
import { canSign, signAccessToken, signingKeys, tokenId } from '../src/oidc/fast-path-tokens.ts';

async function keySet(): Promise<{ set: KeySet; publicJwks: Map<string, object> }> {
  const generated = await generateSigningKeys();
  const publicJwks = new Map<string, object>();
  const keys = generated.map((key) => {
    const { d, p, q, dp, dq, qi, ...publicJwk } = key.privateJwk as Record<string, unknown>;
    void d; void p; void q; void dp; void dq; void qi;
    publicJwks.set(key.alg, publicJwk);
    return { kid: key.kid, alg: key.alg, state: 'active' as const, publicJwk, privateJwk: key.privateJwk, signs: true };
  });
  return { set: { keys, changesAt: undefined, unopened: [] }, publicJwks };
}

describe('fast-path token signing', () => {
  it('signs ES256, RS256 and EdDSA tokens that jose verifies, with the provider header', async () => {
    const { set, publicJwks } = await keySet();
    const keys = signingKeys(set);
    expect([...keys.keys()].sort()).toEqual(['ES256', 'EdDSA', 'RS256']);
    const payload = { roles: ['reader'], jti: tokenId(), sub: 'svc', iat: 1_700_000_000, exp: 4_000_000_000, scope: 'a b', client_id: 'svc', iss: 'https://issuer.test', aud: 'https://api.test' };
    for (const [alg, signing] of keys) {
      expect(canSign(signing)).toBe(true);
      if (!canSign(signing)) continue;
      const token = await signAccessToken(signing, payload);
      const publicKey = await importJWK(publicJwks.get(alg)!, alg);
      const { payload: verified, protectedHeader } = await jwtVerify(token, publicKey, { typ: 'at+jwt', algorithms: [alg] });
      expect(verified).toEqual(payload);
      expect(protectedHeader).toEqual({ alg, typ: 'at+jwt', kid: signing.kid });
      // The header segment is the one jose writes for the same header.
      const privateKey = await importJWK(set.keys.find((k) => k.alg === alg)!.privateJwk!, alg);
      const reference = await new CompactSign(Buffer.from(JSON.stringify(payload)))
        .setProtectedHeader({ alg, typ: 'at+jwt', kid: signing.kid }).sign(privateKey);
      expect(token.split('.').slice(0, 2)).toEqual(reference.split('.').slice(0, 2));
      // A changed payload does not verify under the signature.
      const [header, , signature] = token.split('.');
      const forged = `${header}.${Buffer.from(JSON.stringify({ ...payload, sub: 'other' })).toString('base64url')}.${signature}`;
      await expect(compactVerify(forged, publicKey)).rejects.toThrow();
    }
  });

  it('leaves keys it cannot load, and algorithms it does not sign, to the provider', async () => {
    const { set } = await keySet();
    const broken = { ...set, keys: set.keys.map((key) => (key.alg === 'ES256' ? { ...key, privateJwk: { ...key.privateJwk!, d: 'AA' } } : key)) };
    const keys = signingKeys(broken);
    expect(canSign(keys.get('ES256'))).toBe(false);
    expect(canSign(keys.get('RS256'))).toBe(true);
    expect(keys.has('PS256')).toBe(false);
    const notSigning = signingKeys({ ...set, keys: set.keys.map((key) => ({ ...key, signs: false })) });
    expect(notSigning.size).toBe(0);
  });

  it('hands out token ids of 256 bits that never repeat, across refills of its pool', () => {
    const ids = Array.from({ length: 1000 }, () => tokenId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
