// SQL for the revocation list of JWT access tokens (they are not stored, so revoking one records
// its jti until the moment it would have expired anyway).
import type { Db } from './types.ts';

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
