// SQL for the revocation list of JWT access tokens (they are not stored, so revoking one records
// its jti until the moment it would have expired anyway).
import { revokedGrantJti } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';

export async function insertRevokedToken(
  db: Db,
  token: { jti: string; clientId: string; expiresAt: Date },
): Promise<void> {
  await db.insertInto('revoked_tokens')
    .values({ jti: token.jti, client_id: token.clientId, expires_at: token.expiresAt })
    .onConflict((oc) => oc.column('jti').doNothing())
    .execute();
}

export async function isTokenRevoked(db: Db, jti: string): Promise<boolean> {
  const row = await db.selectFrom('revoked_tokens').select('jti').where('jti', '=', jti).executeTakeFirst();
  return row !== undefined;
}

export async function listLiveRevocations(db: Db, now: Date): Promise<{ jti: string; expires_at: Date }[]> {
  return db.selectFrom('revoked_tokens').select(['jti', 'expires_at']).where('expires_at', '>', now).execute();
}

export async function deleteExpiredRevocations(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('revoked_tokens').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * The longest an access token can live (apis.access_token_ttl is at most a day): a revoked grant
 * is remembered that long, so every JWT issued from it stays inactive until it expires anyway.
 */
const LONGEST_ACCESS_TOKEN_SECONDS = 86_400;

/**
 * Revokes the JWT access tokens of a grant (they are not stored, so what is recorded is the grant
 * digest they carry). Returns the entry, for the caller to publish with its write (every process
 * caches the list); the caller deletes the stored artifacts.
 */
export async function insertRevokedGrant(
  db: Db,
  grant: { digest: string; clientId: string },
  now = Date.now(),
): Promise<{ jti: string; exp: number }> {
  const jti = revokedGrantJti(grant.digest);
  const exp = Math.ceil(now / 1000) + LONGEST_ACCESS_TOKEN_SECONDS;
  await insertRevokedToken(db, { jti, clientId: grant.clientId, expiresAt: new Date(exp * 1000) });
  return { jti, exp };
}
