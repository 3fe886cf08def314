// SQL for oidc-provider artifacts: one table, keyed by (model, id).
import { sql } from 'kysely';
import type { Db } from './types.ts';

export interface StoredPayload {
  payload: Record<string, unknown>;
  consumedAt: Date | null;
}

export async function upsertPayload(
  db: Db,
  model: string,
  id: string,
  payload: Record<string, unknown>,
  expiresAt: Date | null,
): Promise<void> {
  const str = (key: string) => (typeof payload[key] === 'string' ? payload[key] as string : null);
  const row = {
    model,
    id,
    payload: JSON.stringify(payload),
    grant_id: str('grantId'),
    uid: str('uid'),
    user_code: str('userCode'),
    account_id: str('accountId'),
    expires_at: expiresAt,
  };
  await db.insertInto('oidc_payloads').values(row)
    .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet({
      payload: row.payload,
      grant_id: row.grant_id,
      uid: row.uid,
      user_code: row.user_code,
      account_id: row.account_id,
      expires_at: row.expires_at,
    }))
    .execute();
}

/**
 * Claims an id for the first time: inserts it, or takes over a row that has expired. Atomic: of
 * concurrent claims of one live id, exactly one returns true.
 */
export async function claimPayloadId(db: Db, model: string, id: string, expiresAt: Date): Promise<boolean> {
  const claimed = await db.insertInto('oidc_payloads')
    .values({ model, id, payload: JSON.stringify({}), expires_at: expiresAt })
    .onConflict((oc) => oc.columns(['model', 'id'])
      .doUpdateSet({ payload: JSON.stringify({}), expires_at: expiresAt, consumed_at: null })
      .where('oidc_payloads.expires_at', '<=', sql<Date>`now()`))
    .returning('id')
    .executeTakeFirst();
  return claimed !== undefined;
}

type Column = 'uid' | 'user_code';

async function findBy(db: Db, model: string, column: Column, value: string): Promise<StoredPayload | undefined> {
  const row = await db.selectFrom('oidc_payloads')
    .select(['payload', 'consumed_at'])
    .where('model', '=', model)
    .where(column, '=', value)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .executeTakeFirst();
  return row ? { payload: row.payload, consumedAt: row.consumed_at } : undefined;
}

/** The live artifacts of several models with one id (a token looked up as each kind at once). */
export async function findPayloadsById(db: Db, models: readonly string[], id: string): Promise<Map<string, StoredPayload>> {
  const rows = await db.selectFrom('oidc_payloads')
    .select(['model', 'payload', 'consumed_at'])
    .where('id', '=', id)
    .where('model', 'in', models)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .execute();
  return new Map(rows.map((row) => [row.model, { payload: row.payload, consumedAt: row.consumed_at }]));
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
