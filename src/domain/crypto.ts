// Small cryptographic helpers shared by every layer (domain/: no I/O, nothing of Postern imported).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A random identifier: `prefix` + 128 bits, base64url, starting with a letter or digit (an id
 * starting with "-" would read as an option on a command line).
 */
export function randomId(prefix = ''): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (/^[A-Za-z0-9]/.test(id)) return prefix + id;
  }
}

/** The shape of every randomId() without a prefix: 22 base64url characters, not starting with "-". */
export const RANDOM_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{21}$/;

/**
 * Whether `value` could be an identifier Postern generated (a client id, say). Values that cannot
 * be are refused before any lookup, so a caller's string never becomes a database query or a
 * cache key.
 */
export function isRandomId(value: unknown): value is string {
  return typeof value === 'string' && RANDOM_ID_PATTERN.test(value);
}

/** A client secret: 256 bits from the CSPRNG, base64url (43 characters). */
export function generateClientSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The SHA-256 digest (hex) under which a high-entropy secret is stored: client secrets and initial
 * access tokens. They are 256-bit random values, so an unsalted SHA-256 is enough to make a stolen
 * table useless (there is no dictionary to try) while keeping a check to about a microsecond.
 * Never for people's passwords (domain/passwords.ts).
 */
export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented secret with stored hashes; true if any matches. */
export function secretMatchesAny(presented: string, hashes: readonly string[]): boolean {
  const candidate = Buffer.from(sha256Hex(presented), 'hex');
  let match = false;
  for (const hash of hashes) {
    const stored = Buffer.from(hash, 'hex');
    // Every stored hash is compared, so the time does not depend on which one matched.
    if (stored.length === candidate.length && timingSafeEqual(stored, candidate)) match = true;
  }
  return match;
}

/**
 * What a JWT access token issued to a person carries to name its grant (`gid`): a digest, so the
 * token does not disclose the grant id that the provider uses as a lookup key.
 */
export function grantDigest(grantId: string): string {
  return createHash('sha256').update(`grant:${grantId}`, 'utf8').digest('base64url').slice(0, 22);
}

/** The revocation-list entry (revoked_tokens.jti) that revokes every JWT of a grant. */
export function revokedGrantJti(digest: string): string {
  return `grant:${digest}`;
}
