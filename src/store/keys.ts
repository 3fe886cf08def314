// SQL for signing keys and other server secrets.
import type { Selectable } from 'kysely';
import type { SigningKeysTable } from '../db/tables.ts';
import type { Db } from './types.ts';

export type SigningKeyRow = Selectable<SigningKeysTable>;

export async function listSigningKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute();
}

export async function insertSigningKey(
  db: Db,
  key: { kid: string; alg: string; privateJwk: Record<string, unknown> },
): Promise<void> {
  await db.insertInto('signing_keys')
    .values({ kid: key.kid, alg: key.alg, private_jwk: JSON.stringify(key.privateJwk) })
    .execute();
}

export async function findServerSecret(db: Db, name: string): Promise<string | undefined> {
  const row = await db.selectFrom('server_secrets').select('value').where('name', '=', name).executeTakeFirst();
  return row?.value;
}

export async function insertServerSecret(db: Db, name: string, value: string): Promise<void> {
  await db.insertInto('server_secrets').values({ name, value })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}
