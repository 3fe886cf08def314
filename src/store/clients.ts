// SQL for clients and their secrets.
import { sql, type Selectable } from 'kysely';
import type { ClientsTable, Db } from '../db/tables.ts';

export type ClientRow = Selectable<ClientsTable>;

export async function insertClient(
  db: Db,
  client: { clientId: string; name: string; metadata: Record<string, unknown>; allowedNetworks?: string[]; registeredBy?: string },
): Promise<ClientRow> {
  return db.insertInto('clients')
    .values({
      client_id: client.clientId,
      name: client.name,
      metadata: JSON.stringify(client.metadata),
      allowed_networks: JSON.stringify(client.allowedNetworks ?? []),
      registered_by: client.registeredBy ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function findClientById(db: Db, clientId: string): Promise<ClientRow | undefined> {
  return db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
}

export async function findClientByName(db: Db, name: string): Promise<ClientRow | undefined> {
  return db.selectFrom('clients').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function listClients(db: Db): Promise<ClientRow[]> {
  return db.selectFrom('clients').selectAll().orderBy('name').execute();
}

export interface ClientPageQuery {
  limit: number;
  /** Keyset paging: names are unique, so the last name seen marks the position. */
  afterName?: string;
  namePrefix?: string;
  enabled?: boolean;
  roleId?: string;
}

/** One page of clients in name order; asks for one row more to tell whether another page follows. */
export async function listClientsPage(db: Db, query: ClientPageQuery): Promise<{ rows: ClientRow[]; more: boolean }> {
  let select = db.selectFrom('clients').selectAll();
  if (query.afterName !== undefined) select = select.where('name', '>', query.afterName);
  // starts_with, not LIKE: "_" is a wildcard for LIKE and allowed in names.
  if (query.namePrefix) select = select.where(sql<boolean>`starts_with(name, ${query.namePrefix})`);
  if (query.enabled !== undefined) select = select.where('enabled', '=', query.enabled);
  if (query.roleId !== undefined) {
    const roleId = query.roleId;
    select = select.where('client_id', 'in', (eb) =>
      eb.selectFrom('client_roles').select('client_id').where('role_id', '=', roleId));
  }
  const rows = await select.orderBy('name').limit(query.limit + 1).execute();
  return { rows: rows.slice(0, query.limit), more: rows.length > query.limit };
}

/** Moves the client's token cut-off forward (never back: an earlier revocation stays). */
export async function setTokensRevokedBefore(db: Db, clientId: string, at: Date): Promise<Date> {
  const row = await db.updateTable('clients')
    .set({ tokens_revoked_before: sql<Date>`greatest(tokens_revoked_before, ${at})` })
    .where('client_id', '=', clientId)
    .returning('tokens_revoked_before')
    .executeTakeFirstOrThrow();
  return row.tokens_revoked_before ?? at;
}

export async function updateClient(
  db: Db,
  clientId: string,
  changes: { enabled?: boolean; metadata?: Record<string, unknown>; name?: string; allowedNetworks?: string[] },
): Promise<ClientRow | undefined> {
  return db.updateTable('clients')
    .set({
      ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }),
      ...(changes.allowedNetworks === undefined ? {} : { allowed_networks: JSON.stringify(changes.allowedNetworks) }),
      ...(changes.metadata === undefined ? {} : { metadata: JSON.stringify(changes.metadata) }),
      ...(changes.name === undefined ? {} : { name: changes.name }),
      updated_at: new Date(),
    })
    .where('client_id', '=', clientId)
    .returningAll()
    .executeTakeFirst();
}

export async function deleteClient(db: Db, clientId: string): Promise<boolean> {
  const result = await db.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function insertClientSecret(
  db: Db,
  secret: { id: string; clientId: string; secretHash: string },
): Promise<void> {
  await db.insertInto('client_secrets')
    .values({ id: secret.id, client_id: secret.clientId, secret_hash: secret.secretHash })
    .execute();
}

/** Sets the expiry of every secret of a client that has none or a later one. */
export async function expireClientSecrets(db: Db, clientId: string, at: Date, exceptId?: string): Promise<void> {
  let query = db.updateTable('client_secrets')
    .set({ expires_at: at })
    .where('client_id', '=', clientId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', at)]));
  if (exceptId) query = query.where('id', '!=', exceptId);
  await query.execute();
}

export interface SecretRow { id: string; secret_hash: string; created_at: Date; expires_at: Date | null }

export async function listClientSecrets(db: Db, clientId: string): Promise<SecretRow[]> {
  return db.selectFrom('client_secrets')
    .select(['id', 'secret_hash', 'created_at', 'expires_at'])
    .where('client_id', '=', clientId)
    .orderBy('created_at')
    .execute();
}

export async function deleteExpiredClientSecrets(db: Db, now: Date): Promise<number> {
  const result = await db.deleteFrom('client_secrets').where('expires_at', '<=', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
