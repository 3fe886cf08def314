// SQL for signing keys and other server secrets. Private material is stored encrypted
// (`encrypted_*` columns); the plaintext columns hold only rows written before migration 0004,
// until a start encrypts them.
import { sql, type Selectable } from 'kysely';
import type { Db, ServerSecretsTable, SigningKeysTable } from '../db/tables.ts';

export type SigningKeyRow = Selectable<SigningKeysTable>;
export type ServerSecretRow = Selectable<ServerSecretsTable>;

// Arbitrary, constant: the pg_advisory_xact_lock key for writes of key material (the migrator
// uses 727_001).
const KEY_MATERIAL_LOCK = 727_002;

/**
 * Serializes writers of key material (generation, encrypting plaintext rows, master-key rotation,
 * signing-key rotation)
 * across processes until the transaction `trx` ends.
 */
export async function lockKeyMaterial(trx: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${sql.lit(KEY_MATERIAL_LOCK)})`.execute(trx);
}

export async function listSigningKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at').orderBy('kid').execute();
}

/** The keys that are not retired at `now`: what a server publishes and signs with. */
export async function listPublishedSigningKeys(db: Db, now: Date): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll()
    .where((eb) => eb.or([eb('remove_after', 'is', null), eb('remove_after', '>', now)]))
    .orderBy('created_at').orderBy('kid')
    .execute();
}

/** Counts signing keys; works on every schema version (production checks it before migrating). */
export async function countSigningKeys(db: Db): Promise<number> {
  const row = await db.selectFrom('signing_keys').select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirst();
  return Number(row?.count ?? 0);
}

export async function insertSigningKey(
  db: Db,
  key: {
    kid: string; alg: string; publicJwk: Record<string, unknown>; encryptedPrivateJwk: string;
    /** Both default to the database's now(): published and signing at once (first keys). */
    createdAt?: Date; activatesAt?: Date;
  },
): Promise<void> {
  await db.insertInto('signing_keys')
    .values({
      kid: key.kid,
      alg: key.alg,
      public_jwk: JSON.stringify(key.publicJwk),
      encrypted_private_jwk: key.encryptedPrivateJwk,
      created_at: key.createdAt,
      activates_at: key.activatesAt,
    })
    .execute();
}

/** Sets when keys stop signing and when they leave the JWKS. */
export async function scheduleRetirement(db: Db, kids: string[], retiresAt: Date, removeAfter: Date): Promise<void> {
  if (kids.length === 0) return;
  await db.updateTable('signing_keys')
    .set({ retires_at: retiresAt, remove_after: removeAfter })
    .where('kid', 'in', kids)
    .execute();
}

/**
 * Takes a key out at once (a leaked key): it stops signing and leaves the JWKS at `at`. Its dates
 * stay in order (migration 0006): a key that was to sign later is moved to `at` too.
 */
export async function retireSigningKeyNow(db: Db, kid: string, at: Date): Promise<void> {
  await db.updateTable('signing_keys')
    .set({
      activates_at: sql<Date>`least(activates_at, ${at})`,
      retires_at: sql<Date>`least(coalesce(retires_at, ${at}), ${at})`,
      remove_after: at,
    })
    .where('kid', '=', kid)
    .execute();
}

/** Brings a scheduled key forward: it signs from `at`. */
export async function activateSigningKeyAt(db: Db, kid: string, at: Date): Promise<void> {
  await db.updateTable('signing_keys').set({ activates_at: at }).where('kid', '=', kid).execute();
}

/** Stores a key's private JWK encrypted and drops its plaintext. */
export async function setEncryptedPrivateJwk(db: Db, kid: string, envelope: string): Promise<void> {
  await db.updateTable('signing_keys')
    .set({ encrypted_private_jwk: envelope, private_jwk: null })
    .where('kid', '=', kid)
    .execute();
}

export async function listServerSecrets(db: Db): Promise<ServerSecretRow[]> {
  return db.selectFrom('server_secrets').selectAll().orderBy('name').execute();
}

export async function findServerSecret(db: Db, name: string): Promise<ServerSecretRow | undefined> {
  return db.selectFrom('server_secrets').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function insertServerSecret(db: Db, name: string, envelope: string): Promise<void> {
  await db.insertInto('server_secrets').values({ name, encrypted_value: envelope })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}

/** Stores a server secret encrypted and drops its plaintext. */
export async function setEncryptedServerSecret(db: Db, name: string, envelope: string): Promise<void> {
  await db.updateTable('server_secrets')
    .set({ encrypted_value: envelope, value: null })
    .where('name', '=', name)
    .execute();
}
