// SQL for oidc-provider artifacts: one table, keyed by (model, id). What goes in a row (ids hashed,
// bearer values sealed) is decided by the adapter (src/domain/artifact-hashing.ts); this module stores it.
import { sql } from 'kysely';
import type { Db } from '../db/tables.ts';

export interface StoredPayload {
  /** The id the row is stored under (hashed for most models). */
  id: string;
  payload: Record<string, unknown>;
  consumedAt: Date | null;
}

export async function upsertPayload(
  db: Db,
  model: string,
  id: string,
  payload: Record<string, unknown>,
  expiresAt: Date | null,
  /** The indexed user code (a device code's, hashed), looked up by findPayloadByUserCode. */
  userCode: string | null,
): Promise<void> {
  const str = (key: string) => (typeof payload[key] === 'string' ? payload[key] as string : null);
  const row = {
    model,
    id,
    payload: JSON.stringify(payload),
    grant_id: str('grantId'),
    uid: str('uid'),
    user_code: userCode,
    account_id: str('accountId'),
    expires_at: expiresAt,
    hashed: true,
  };
  await db.insertInto('oidc_payloads').values(row)
    .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet({
      payload: row.payload,
      grant_id: row.grant_id,
      uid: row.uid,
      user_code: row.user_code,
      account_id: row.account_id,
      expires_at: row.expires_at,
      hashed: true,
    }))
    .execute();
}

/**
 * Claims an id for the first time: inserts it, or takes over a row that has expired. Atomic: of
 * concurrent claims of one live id, exactly one returns true.
 */
export async function claimPayloadId(db: Db, model: string, id: string, expiresAt: Date): Promise<boolean> {
  const claimed = await db.insertInto('oidc_payloads')
    .values({ model, id, payload: JSON.stringify({}), expires_at: expiresAt, hashed: true })
    .onConflict((oc) => oc.columns(['model', 'id'])
      .doUpdateSet({ payload: JSON.stringify({}), expires_at: expiresAt, consumed_at: null, hashed: true })
      .where('oidc_payloads.expires_at', '<=', sql<Date>`now()`))
    .returning('id')
    .executeTakeFirst();
  return claimed !== undefined;
}

type Column = 'uid' | 'user_code';

async function findBy(db: Db, model: string, column: Column, value: string): Promise<StoredPayload | undefined> {
  const row = await db.selectFrom('oidc_payloads')
    .select(['id', 'payload', 'consumed_at'])
    .where('model', '=', model)
    .where(column, '=', value)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .executeTakeFirst();
  return row ? { id: row.id, payload: row.payload, consumedAt: row.consumed_at } : undefined;
}

/** The live artifacts of several models with one id (a token looked up as each kind at once). */
export async function findPayloadsById(db: Db, models: readonly string[], id: string): Promise<Map<string, StoredPayload>> {
  const rows = await db.selectFrom('oidc_payloads')
    .select(['model', 'id', 'payload', 'consumed_at'])
    .where('id', '=', id)
    .where('model', 'in', models)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .execute();
  return new Map(rows.map((row) => [row.model, { id: row.id, payload: row.payload, consumedAt: row.consumed_at }]));
}
export const findPayloadByUid = (db: Db, model: string, uid: string) => findBy(db, model, 'uid', uid);
export const findPayloadByUserCode = (db: Db, model: string, code: string) => findBy(db, model, 'user_code', code);

/**
 * Marks an artifact consumed. Atomic: of concurrent calls for one id, exactly one returns true.
 */
export async function consumePayload(db: Db, model: string, id: string): Promise<boolean> {
  const result = await db.updateTable('oidc_payloads')
    .set({ consumed_at: sql<Date>`now()` })
    .where('model', '=', model)
    .where('id', '=', id)
    .where('consumed_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export async function deletePayload(db: Db, model: string, id: string): Promise<void> {
  await db.deleteFrom('oidc_payloads').where('model', '=', model).where('id', '=', id).execute();
}

export async function deletePayloadsByGrantId(db: Db, grantId: string): Promise<void> {
  await db.deleteFrom('oidc_payloads').where('grant_id', '=', grantId).execute();
}

/**
 * Deletes every artifact issued to a client: opaque access tokens, refresh tokens, codes and
 * grants all carry `clientId` in their payload. An admin operation, so no index is kept for it.
 */
export async function deletePayloadsByClientId(db: Db, clientId: string): Promise<number> {
  const result = await db.deleteFrom('oidc_payloads')
    .where(sql<string>`payload->>'clientId'`, '=', clientId)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Deletes a person's sessions, grants and everything issued from those grants. */
export async function deletePayloadsOfAccount(db: Db, accountId: string, grantIds: readonly string[]): Promise<number> {
  let deleted = 0;
  if (grantIds.length) {
    const result = await db.deleteFrom('oidc_payloads').where('grant_id', 'in', grantIds).executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  const result = await db.deleteFrom('oidc_payloads').where('account_id', '=', accountId).executeTakeFirst();
  return deleted + Number(result.numDeletedRows);
}

export async function deleteExpiredPayloads(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('oidc_payloads').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** A person's grants: every client they signed in to. */
export async function listGrantsOfAccount(db: Db, accountId: string): Promise<{ id: string; clientId: string }[]> {
  const rows = await db.selectFrom('oidc_payloads')
    .select(['id', sql<string>`payload->>'clientId'`.as('clientId')])
    .where('model', '=', 'Grant').where('account_id', '=', accountId)
    .execute();
  return rows;
}

// Arbitrary, constant: the pg_advisory_xact_lock key for converting rows of older versions (the
// migrator uses 727_001, key material 727_002).
const CONVERSION_LOCK = 727_003;

// A literal, not a parameter: only then can a plan use the partial index oidc_payloads_unhashed.
const UNHASHED = sql.lit(false);

/** Serializes conversions of rows written before migration 0011 until `trx` ends. */
export async function lockPayloadConversion(trx: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${sql.lit(CONVERSION_LOCK)})`.execute(trx);
}

/** Whether any row is still in an older version's form (an index-only look). */
export async function hasUnhashedPayloads(db: Db): Promise<boolean> {
  const row = await db.selectFrom('oidc_payloads').select('model').where('hashed', '=', UNHASHED).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** Rows of an older version that have expired: deleted, not converted. */
export async function deleteExpiredUnhashedPayloads(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('oidc_payloads').where('hashed', '=', UNHASHED).where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export interface UnhashedPayload {
  model: string;
  id: string;
  payload: Record<string, unknown>;
  userCode: string | null;
  grantId: string | null;
  uid: string | null;
  accountId: string | null;
  expiresAt: Date | null;
  consumedAt: Date | null;
}

/**
 * Takes up to `limit` rows of an older version out of the table (deleted, returned): the caller
 * writes them back in the hashed form, in the same transaction.
 */
export async function takeUnhashedPayloads(db: Db, limit: number): Promise<UnhashedPayload[]> {
  const rows = await db.deleteFrom('oidc_payloads')
    .where(({ eb, refTuple, selectFrom }) => eb(refTuple('model', 'id'), 'in',
      selectFrom('oidc_payloads').select(['model', 'id']).where('hashed', '=', UNHASHED).limit(limit).forUpdate()
        .$asTuple('model', 'id')))
    .returningAll()
    .execute();
  return rows.map((row) => ({
    model: row.model, id: row.id, payload: row.payload, userCode: row.user_code, grantId: row.grant_id, uid: row.uid,
    accountId: row.account_id, expiresAt: row.expires_at, consumedAt: row.consumed_at,
  }));
}

/**
 * Writes converted rows. One whose new id (or uid) is taken already is dropped: an older process
 * wrote it again after its first conversion, and the converted copy stands. Returns how many
 * were written.
 */
export async function insertConvertedPayloads(db: Db, rows: readonly UnhashedPayload[]): Promise<number> {
  if (!rows.length) return 0;
  const result = await db.insertInto('oidc_payloads')
    .values(rows.map((row) => ({
      model: row.model, id: row.id, payload: JSON.stringify(row.payload), grant_id: row.grantId, uid: row.uid,
      user_code: row.userCode, account_id: row.accountId, expires_at: row.expiresAt, consumed_at: row.consumedAt, hashed: true,
    })))
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0);
}
