// SQL for what a client may ask for on others' behalf by token exchange (RFC 8693): per API, the
// scopes it may request in an exchanged token (docs/token-exchange.md).
import type { Db } from '../db/tables.ts';

export interface ExchangeScopeRow { api_id: string; identifier: string; scope: string }

/** The client's exchange permissions, with each API's identifier. */
export async function listExchangeScopes(db: Db, clientId: string): Promise<ExchangeScopeRow[]> {
  return db.selectFrom('client_exchange_scopes')
    .innerJoin('apis', 'apis.id', 'client_exchange_scopes.api_id')
    .select(['client_exchange_scopes.api_id', 'apis.identifier', 'client_exchange_scopes.scope'])
    .where('client_exchange_scopes.client_id', '=', clientId)
    .orderBy('apis.identifier').orderBy('client_exchange_scopes.scope')
    .execute();
}

/** Replaces every exchange permission of the client. */
export async function replaceExchangeScopes(
  db: Db, clientId: string, permissions: readonly { apiId: string; scope: string }[],
): Promise<void> {
  await db.deleteFrom('client_exchange_scopes').where('client_id', '=', clientId).execute();
  if (permissions.length === 0) return;
  await db.insertInto('client_exchange_scopes')
    .values(permissions.map((p) => ({ client_id: clientId, api_id: p.apiId, scope: p.scope })))
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export async function setMayImpersonate(db: Db, clientId: string, allowed: boolean): Promise<void> {
  await db.updateTable('clients').set({ may_impersonate: allowed, updated_at: new Date() })
    .where('client_id', '=', clientId).execute();
}

/** The identifiers of the APIs a client owns (serves). */
export async function listOwnedApis(db: Db, clientId: string): Promise<string[]> {
  const rows = await db.selectFrom('apis').select('identifier').where('owner_client_id', '=', clientId)
    .orderBy('identifier').execute();
  return rows.map((row) => row.identifier);
}
