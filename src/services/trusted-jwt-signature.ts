// The signature check of a trusted issuer's token (trusted-jwt.ts), made with node:crypto rather
// than through WebCrypto, whose ECDSA verification cost a federated token request about twice
// what the same verification costs here. It runs in place: handing it to the thread pool cost
// more (a wake-up and a switch per request) than it spared the event loop on a 2-core machine
// (bench/cpu-per-request.ts, whole process and its main thread). The checks are those of jose's
// jwtVerify with the options trusted-jwt.ts gave it (algorithms, clockTolerance), in its order and
// with its error classes, so that refusals keep their reasons; some are stricter: no `crit`
// header at all (platform tokens use none), base64url without padding only. The key is still
// chosen by jose (createLocalJWKSet: kid, key type, curve, use, key_ops). Every case is compared
// with jwtVerify in test/trusted-jwt-signature.test.ts.
import { KeyObject, verify, constants } from 'node:crypto';
import { errors, type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey } from 'jose';

interface Algorithm {
  /** The digest, or null for EdDSA. */
  hash: string | null;
  /** Whether the key chosen for this algorithm is of its type (and, for RSA, long enough). */
  fits(key: KeyObject): boolean;
  options?: { padding?: number; saltLength?: number; dsaEncoding?: 'ieee-p1363' };
}

const isRsa = (key: KeyObject) => (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss')
  && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
const rsa = (hash: string): Algorithm => ({ hash, fits: isRsa });
const pss = (hash: string, saltLength: number): Algorithm => ({
  hash, fits: isRsa, options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength },
});
const ecdsa = (hash: string, curve: string): Algorithm => ({
  hash, fits: (key) => key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === curve, options: { dsaEncoding: 'ieee-p1363' },
});
const ed25519: Algorithm = { hash: null, fits: (key) => key.asymmetricKeyType === 'ed25519' };

/** RFC 7518 §3.1 and RFC 8037: the asymmetric JWS algorithms a trusted issuer may use. */
const ALGORITHMS: Record<string, Algorithm> = {
  RS256: rsa('sha256'), RS384: rsa('sha384'), RS512: rsa('sha512'),
  PS256: pss('sha256', 32), PS384: pss('sha384', 48), PS512: pss('sha512', 64),
  ES256: ecdsa('sha256', 'prime256v1'), ES384: ecdsa('sha384', 'secp384r1'), ES512: ecdsa('sha512', 'secp521r1'),
  EdDSA: ed25519, Ed25519: ed25519,
};

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON object (not an array, not null), as jose's isObject. */
function parseObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(strictUtf8.decode(Buffer.from(segment, 'base64url')));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** Key objects of the CryptoKeys jose imported, made once each. */
const keyObjects = new WeakMap<object, KeyObject>();

function keyObjectOf(key: unknown): KeyObject {
  if (key instanceof KeyObject) return key;
  let object = keyObjects.get(key as object);
  if (!object) {
    object = KeyObject.from(key as Parameters<typeof KeyObject.from>[0]);
    keyObjects.set(key as object, object);
  }
  return object;
}

function verified(algorithm: Algorithm, data: Buffer, key: KeyObject, signature: Buffer): boolean {
  try {
    return verify(algorithm.hash, data, { key, ...algorithm.options }, signature);
  } catch {
    return false; // a signature of the wrong length for the key, say
  }
}

/** RFC 7519 §4.1.4-6 as jose checks them: numbers when present, `nbf` and `exp` against now. */
function checkTimes(payload: JWTPayload, clockTolerance: number, now: number): void {
  for (const claim of ['iat', 'nbf'] as const) {
    if (payload[claim] !== undefined && typeof payload[claim] !== 'number') {
      throw new errors.JWTClaimValidationFailed(`"${claim}" claim must be a number`, payload, claim, 'invalid');
    }
  }
  if (payload.nbf !== undefined && payload.nbf > now + clockTolerance) {
    throw new errors.JWTClaimValidationFailed('"nbf" claim timestamp check failed', payload, 'nbf', 'check_failed');
  }
  if (payload.exp !== undefined && typeof payload.exp !== 'number') {
    throw new errors.JWTClaimValidationFailed('"exp" claim must be a number', payload, 'exp', 'invalid');
  }
  if (payload.exp !== undefined && payload.exp <= now - clockTolerance) {
    throw new errors.JWTExpired('"exp" claim timestamp check failed', payload, 'exp', 'check_failed');
  }
}

/**
 * The claims of a compact JWS signed by the key `getKey` chooses, with one of `algorithms`;
 * throws jose's errors otherwise (JWKSNoMatchingKey and JWKSMultipleMatchingKeys from `getKey`,
 * JWTExpired, JWTClaimValidationFailed, JWSSignatureVerificationFailed, JWSInvalid, ...).
 */
export async function verifyTrustedSignature(
  token: string, getKey: JWTVerifyGetKey, algorithms: readonly string[], clockTolerance: number,
): Promise<JWTPayload> {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part)) || !parts[2]) throw new errors.JWSInvalid('Invalid Compact JWS');
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = parseObject(encodedHeader);
  if (!header) throw new errors.JWSInvalid('JWS Protected Header is invalid');
  // No extension is understood here (jose knows b64 alone, which a JWT must not use anyway).
  if (header.crit !== undefined) throw new errors.JOSENotSupported('Extension Header Parameters are not supported');
  const { alg } = header;
  if (typeof alg !== 'string' || !alg) throw new errors.JWSInvalid('JWS "alg" (Algorithm) Header Parameter missing or invalid');
  const algorithm = ALGORITHMS[alg];
  if (!algorithms.includes(alg) || !algorithm) throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  const key = keyObjectOf(await getKey(header as unknown as JWTHeaderParameters, { payload: encodedPayload, signature: encodedSignature }));
  if (key.type !== 'public' || !algorithm.fits(key)) throw new TypeError(`the key chosen is not a key for ${alg}`);
  const data = Buffer.from(`${encodedHeader}.${encodedPayload}`, 'ascii');
  if (!verified(algorithm, data, key, Buffer.from(encodedSignature, 'base64url'))) {
    throw new errors.JWSSignatureVerificationFailed();
  }
  const payload = parseObject(encodedPayload) as JWTPayload | undefined;
  if (!payload) throw new errors.JWTInvalid('JWT Claims Set must be a top-level JSON object');
  checkTimes(payload, clockTolerance, Math.floor(Date.now() / 1000));
  return payload;
}
