// People's passwords: argon2id with its parameters in this one place (docs/users.md). A leaf
// module (domain/). Client secrets never come here: they are random and hashed fast.
import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/**
 * OWASP's first recommended argon2id configuration (19 MiB, 2 passes, 1 lane). Changing these
 * makes every stored hash "old": each person's hash is redone at their next successful login.
 */
export const ARGON2_PARAMETERS = {
  type: argon2.argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

export function hashPassword(password: string, parameters = ARGON2_PARAMETERS): Promise<string> {
  return argon2.hash(password, parameters);
}

/** False for a wrong password and for a hash that is not an argon2 hash at all. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

export function passwordNeedsRehash(hash: string, parameters = ARGON2_PARAMETERS): boolean {
  return argon2.needsRehash(hash, parameters);
}

let decoy: Promise<string> | undefined;

/**
 * Spends the time of a real verification when the username is unknown or disabled, so that the
 * response time does not tell who has an account.
 */
export async function verifyDecoy(password: string): Promise<false> {
  decoy ??= hashPassword(randomBytes(24).toString('base64url'));
  await verifyPassword(await decoy, password);
  return false;
}
