// SQL for initial access tokens (RFC 7591 §3), stored as SHA-256 hashes with their roles.
import { sql, type Selectable } from 'kysely';
import type { Db, RegistrationTokensTable } from '../db/tables.ts';

export type RegistrationTokenRow = Selectable<RegistrationTokensTable>;

export async function insertRegistrationToken(
  db: Db,
  token: { id: string; tokenHash: string; description: string | null; maxUses: number; expiresAt: Date; roleIds: string[] },
): Promise<void> {
  await db.insertInto('registration_tokens').values({
    id: token.id,
    token_hash: token.tokenHash,
    description: token.description,
    max_uses: token.maxUses,
    expires_at: token.expiresAt,
  }).execute();
  if (token.roleIds.length) {
    await db.insertInto('registration_token_roles')
      .values(token.roleIds.map((roleId) => ({ token_id: token.id, role_id: roleId })))
      .execute();
  }
}

/** A token by the hash of its value, if it may register a client now. */
export async function findUsableRegistrationToken(db: Db, tokenHash: string, now: Date): Promise<RegistrationTokenRow | undefined> {
  return db.selectFrom('registration_tokens').selectAll()
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .where((eb) => eb('uses', '<', eb.ref('max_uses')))
    .executeTakeFirst();
}

/**
 * Takes one use of the token, atomically: of two registrations racing for the last use, exactly
 * one gets it. Undefined when the token is unknown, revoked, expired or used up.
 */
export async function consumeRegistrationToken(db: Db, tokenHash: string, now: Date): Promise<RegistrationTokenRow | undefined> {
  return db.updateTable('registration_tokens')
    .set({ uses: sql`uses + 1` })
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .where((eb) => eb('uses', '<', eb.ref('max_uses')))
    .returningAll()
    .executeTakeFirst();
}

export async function findRegistrationToken(db: Db, id: string): Promise<RegistrationTokenRow | undefined> {
  return db.selectFrom('registration_tokens').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function listRegistrationTokens(db: Db): Promise<RegistrationTokenRow[]> {
  return db.selectFrom('registration_tokens').selectAll().orderBy('created_at', 'desc').orderBy('id').execute();
}

export async function listRegistrationTokenRoles(db: Db, tokenId: string): Promise<{ id: string; name: string }[]> {
  return db.selectFrom('registration_token_roles')
    .innerJoin('roles', 'roles.id', 'registration_token_roles.role_id')
    .select(['roles.id', 'roles.name'])
    .where('registration_token_roles.token_id', '=', tokenId)
    .orderBy('roles.name')
    .execute();
}

export async function revokeRegistrationToken(db: Db, id: string, now: Date): Promise<RegistrationTokenRow | undefined> {
  return db.updateTable('registration_tokens')
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, ${now})` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}
