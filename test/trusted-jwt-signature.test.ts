// The signature check of trusted issuers' tokens (src/services/trusted-jwt-signature.ts) against
// jose's jwtVerify with the options it replaced (algorithms, clockTolerance), token by token: the
// same tokens accepted with the same claims, the same refused with the same kind of error, except
// where the check is stricter on purpose (listed at the end).
import { constants, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { TRUSTED_JWT_ALGS } from '../src/domain/trusted-issuers.ts';
import { verifyTrustedSignature } from '../src/services/trusted-jwt-signature.ts';

const TOLERANCE = 30;
const now = () => Math.floor(Date.now() / 1000);

interface Pair { alg: string; kid: string; private: KeyObject; jwk: JWK }
function pair(alg: string, kid: string, generate: () => { privateKey: KeyObject; publicKey: KeyObject }): Pair {
  const { privateKey, publicKey } = generate();
  return { alg, kid, private: privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' } as JWK };
}
const rsa = (bits: number) => () => generateKeyPairSync('rsa', { modulusLength: bits });
const ec = (namedCurve: string) => () => generateKeyPairSync('ec', { namedCurve });
const keys = {
  rs: pair('RS256', 'rs', rsa(2048)),
  ps: pair('PS384', 'ps', rsa(2048)),
  weak: pair('RS256', 'weak', rsa(1024)),
  es256: pair('ES256', 'es256', ec('P-256')),
  es384: pair('ES384', 'es384', ec('P-384')),
  es512: pair('ES512', 'es512', ec('P-521')),
  ed: pair('EdDSA', 'ed', () => generateKeyPairSync('ed25519')),
  stranger: pair('ES256', 'es256', ec('P-256')),
};
// Two P-256 keys: a token naming no kid matches both.
const twin = pair('ES256', 'twin', ec('P-256'));
const jwks = createLocalJWKSet({ keys: [keys.rs.jwk, keys.ps.jwk, keys.weak.jwk, keys.es256.jwk, keys.es384.jwk, keys.es512.jwk, keys.ed.jwk, twin.jwk] });

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const HASH: Record<string, string | null> = { RS256: 'sha256', PS384: 'sha384', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512', EdDSA: null, Ed25519: null };

function jws(header: Record<string, unknown>, payload: unknown, key: Pair, signAs = String(header.alg)): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const options = signAs.startsWith('PS') ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }
    : signAs.startsWith('ES') ? { dsaEncoding: 'ieee-p1363' as const } : {};
  const signature = sign(HASH[signAs] ?? null, Buffer.from(input), { key: key.private, ...options });
  return `${input}.${signature.toString('base64url')}`;
}
const claims = (extra: Record<string, unknown> = {}) => ({ iss: 'https://issuer.internal', sub: 'workload', iat: now(), exp: now() + 300, ...extra });
const token = (key: Pair, extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  jws({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }, claims(extra), key);

/** What a check made of a token: its claims, or the kind of refusal. */
async function outcome(check: () => Promise<unknown>): Promise<unknown> {
  try {
    return { claims: await check() };
  } catch (error) {
    if (error instanceof errors.JWKSNoMatchingKey) return 'no matching key';
    if (error instanceof errors.JWKSMultipleMatchingKeys) return 'several matching keys';
    if (error instanceof errors.JWTExpired) return 'expired';
    if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim}`;
    return 'refused';
  }
}
const ours = (value: string) => outcome(() => verifyTrustedSignature(value, jwks, TRUSTED_JWT_ALGS, TOLERANCE));
const jose = (value: string) => outcome(async () => (await jwtVerify(value, jwks, { algorithms: TRUSTED_JWT_ALGS, clockTolerance: TOLERANCE })).payload);

function tamper(value: string, part: number, change: (segment: string) => string): string {
  const parts = value.split('.');
  parts[part] = change(parts[part]!);
  return parts.join('.');
}

const cases: [string, () => string][] = [
  ['RS256', () => token(keys.rs)],
  ['PS384', () => token(keys.ps)],
  ['ES256', () => token(keys.es256)],
  ['ES384', () => token(keys.es384)],
  ['ES512', () => token(keys.es512)],
  ['EdDSA', () => token(keys.ed)],
  ['Ed25519 as the alg', () => jws({ alg: 'Ed25519', kid: 'ed' }, claims(), keys.ed)],
  ['no typ, no kid (one key of the type)', () => jws({ alg: 'ES384' }, claims(), keys.es384)],
  ['no kid, two keys of the type', () => jws({ alg: 'ES256' }, claims(), keys.es256)],
  ['an unknown kid', () => token(keys.es256, {}, { kid: 'nobody' })],
  ['signed by a stranger', () => token(keys.stranger)],
  ['a payload changed after signing', () => tamper(token(keys.es256), 1, () => b64(claims({ sub: 'admin' })))],
  ['a header changed after signing', () => tamper(token(keys.rs), 0, () => b64({ alg: 'RS256', kid: 'rs', typ: 'at+jwt' }))],
  ['a signature cut short', () => tamper(token(keys.es256), 2, (s) => s.slice(0, 40))],
  ['a DER-encoded ECDSA signature', () => {
    const input = `${b64({ alg: 'ES256', kid: 'es256' })}.${b64(claims())}`;
    return `${input}.${sign('sha256', Buffer.from(input), keys.es256.private).toString('base64url')}`;
  }],
  ['ES256 named, a P-384 key signing', () => jws({ alg: 'ES256', kid: 'es384' }, claims(), keys.es384, 'ES384')],
  ['RS256 named, the PS key signing PS384', () => jws({ alg: 'RS256', kid: 'ps' }, claims(), keys.ps, 'PS384')],
  ['an RSA key of 1024 bits', () => token(keys.weak)],
  ['alg none', () => `${b64({ alg: 'none' })}.${b64(claims())}.`],
  ['alg HS256', () => `${b64({ alg: 'HS256', kid: 'rs' })}.${b64(claims())}.${b64('mac')}`],
  ['alg missing', () => jws({ kid: 'es256' }, claims(), keys.es256, 'ES256')],
  ['alg not a string', () => jws({ alg: 256, kid: 'es256' }, claims(), keys.es256, 'ES256')],
  ['crit naming an unknown extension', () => jws({ alg: 'ES256', kid: 'es256', crit: ['exp'], exp: 1 }, claims(), keys.es256)],
  ['b64 false without crit (ignored)', () => jws({ alg: 'ES256', kid: 'es256', b64: false }, claims(), keys.es256)],
  ['a header that is not JSON', () => tamper(token(keys.es256), 0, () => b64('{alg'))],
  ['a header that is an array', () => jws(['ES256'] as never, claims(), keys.es256, 'ES256')],
  ['a payload that is an array', () => jws({ alg: 'ES256', kid: 'es256' }, [claims()], keys.es256)],
  ['a payload that is a string', () => jws({ alg: 'ES256', kid: 'es256' }, 'claims', keys.es256)],
  ['a payload that is not UTF-8', () => {
    const input = `${b64({ alg: 'ES256', kid: 'es256' })}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}`;
    return `${input}.${sign('sha256', Buffer.from(input), { key: keys.es256.private, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  }],
  ['four parts', () => `${token(keys.es256)}.x`],
  ['two parts', () => token(keys.es256).split('.').slice(0, 2).join('.')],
  ['expired', () => token(keys.es256, { exp: now() - 60 })],
  ['expired within the tolerance', () => token(keys.es256, { exp: now() - 10 })],
  ['no exp', () => token(keys.es256, { exp: undefined })],
  ['exp a string', () => token(keys.es256, { exp: String(now() + 300) })],
  ['nbf in the future', () => token(keys.es256, { nbf: now() + 120 })],
  ['nbf within the tolerance', () => token(keys.es256, { nbf: now() + 10 })],
  ['nbf a string', () => token(keys.es256, { nbf: 'soon' })],
  ['iat a string', () => token(keys.es256, { iat: 'today' })],
  ['iat in the future', () => token(keys.es256, { iat: now() + 600 })],
  ['iat null', () => token(keys.es256, { iat: null })],
];

describe('trusted-issuer signatures checked as jose checks them', () => {
  for (const [name, make] of cases) {
    it(name, async () => {
      const value = make();
      expect(await ours(value)).toEqual(await jose(value));
    });
  }

  it('accepts every algorithm a trusted issuer may use, and each signature only once it is right', async () => {
    for (const key of [keys.rs, keys.ps, keys.es256, keys.es384, keys.es512, keys.ed]) {
      expect(await ours(token(key))).toMatchObject({ claims: { sub: 'workload' } });
      expect(await ours(tamper(token(key), 2, (s) => `${s.slice(0, -4)}AAAA`))).toBe('refused');
    }
  });
});

describe('where the check is stricter than jose', () => {
  it('refuses a crit header even naming b64, and padded base64url', async () => {
    const critical = jws({ alg: 'ES256', kid: 'es256', crit: ['b64'], b64: true }, claims(), keys.es256);
    expect(await jose(critical)).toMatchObject({ claims: { sub: 'workload' } });
    expect(await ours(critical)).toBe('refused');
    const padded = `${token(keys.es256)}==`;
    expect(await ours(padded)).toBe('refused');
  });
});
