// SQL for APIs (resource servers) and the scopes they define.
import type { Selectable } from 'kysely';
import type { ApisTable, Db } from '../db/tables.ts';

export type ApiRow = Selectable<ApisTable>;
export interface ApiWithScopes extends ApiRow {
  scopes: string[];
  /** What each scope lets a client or a person do, where one was written (the consent page shows it). */
  scopeDescriptions: Record<string, string>;
}

export interface NewApi {
  id: string;
  identifier: string;
  name: string;
  tokenFormat: 'jwt' | 'opaque';
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClientId: string | null;
  requireDpop?: boolean;
  requireMtls?: boolean;
  /** The client that serves the API (token exchange, migration 0015). */
  ownerClientId?: string | null;
}

export async function insertApi(db: Db, api: NewApi): Promise<void> {
  await db.insertInto('apis').values({
    id: api.id,
    identifier: api.identifier,
    name: api.name,
    token_format: api.tokenFormat,
    signing_alg: api.signingAlg,
    access_token_ttl: api.accessTokenTtl,
    introspection_client_id: api.introspectionClientId,
    require_dpop: api.requireDpop ?? false,
    require_mtls: api.requireMtls ?? false,
    owner_client_id: api.ownerClientId ?? null,
  }).execute();
}

export async function insertApiScopes(db: Db, apiId: string, scopes: readonly string[]): Promise<void> {
  if (scopes.length === 0) return;
  await db.insertInto('api_scopes')
    .values(scopes.map((name) => ({ api_id: apiId, name, description: null })))
    .onConflict((oc) => oc.columns(['api_id', 'name']).doNothing())
    .execute();
}

/** Sets (or, with null, clears) the description of each named scope of an API. */
export async function setApiScopeDescriptions(db: Db, apiId: string, descriptions: Record<string, string | null>): Promise<void> {
  for (const [name, description] of Object.entries(descriptions)) {
    await db.updateTable('api_scopes').set({ description }).where('api_id', '=', apiId).where('name', '=', name).execute();
  }
}

export async function deleteApiScopes(db: Db, apiId: string, scopes: readonly string[]): Promise<void> {
  if (scopes.length === 0) return;
  await db.deleteFrom('api_scopes').where('api_id', '=', apiId).where('name', 'in', scopes).execute();
}

async function withScopes(db: Db, rows: ApiRow[]): Promise<ApiWithScopes[]> {
  if (rows.length === 0) return [];
  const scopes = await db.selectFrom('api_scopes')
    .select(['api_id', 'name', 'description'])
    .where('api_id', 'in', rows.map((row) => row.id))
    .orderBy('name')
    .execute();
  return rows.map((row) => {
    const own = scopes.filter((s) => s.api_id === row.id);
    return {
      ...row,
      scopes: own.map((s) => s.name),
      scopeDescriptions: Object.fromEntries(own.filter((s) => s.description !== null).map((s) => [s.name, s.description!])),
    };
  });
}

export async function listApis(db: Db): Promise<ApiWithScopes[]> {
  return withScopes(db, await db.selectFrom('apis').selectAll().orderBy('identifier').execute());
}

/** Finds an API by id, identifier or name. */
export async function findApi(db: Db, ref: string): Promise<ApiWithScopes | undefined> {
  const rows = await db.selectFrom('apis').selectAll()
    .where((eb) => eb.or([eb('id', '=', ref), eb('identifier', '=', ref), eb('name', '=', ref)]))
    .execute();
  const [api] = await withScopes(db, rows);
  return api;
}

export async function updateApi(
  db: Db,
  id: string,
  changes: Partial<Pick<NewApi, 'name' | 'tokenFormat' | 'signingAlg' | 'accessTokenTtl' | 'introspectionClientId' | 'requireDpop' | 'requireMtls' | 'ownerClientId'>>,
): Promise<void> {
  await db.updateTable('apis').set({
    ...(changes.name === undefined ? {} : { name: changes.name }),
    ...(changes.tokenFormat === undefined ? {} : { token_format: changes.tokenFormat }),
    ...(changes.signingAlg === undefined ? {} : { signing_alg: changes.signingAlg }),
    ...(changes.accessTokenTtl === undefined ? {} : { access_token_ttl: changes.accessTokenTtl }),
    ...(changes.introspectionClientId === undefined ? {} : { introspection_client_id: changes.introspectionClientId }),
    ...(changes.requireDpop === undefined ? {} : { require_dpop: changes.requireDpop }),
    ...(changes.requireMtls === undefined ? {} : { require_mtls: changes.requireMtls }),
    ...(changes.ownerClientId === undefined ? {} : { owner_client_id: changes.ownerClientId }),
    updated_at: new Date(),
  }).where('id', '=', id).execute();
}

export async function deleteApi(db: Db, id: string): Promise<void> {
  await db.deleteFrom('apis').where('id', '=', id).execute();
}

/** Finds an API by its resource identifier only (the token endpoint's `resource`). */
export async function findApiByIdentifier(db: Db, identifier: string): Promise<ApiWithScopes | undefined> {
  const rows = await db.selectFrom('apis').selectAll().where('identifier', '=', identifier).execute();
  const [api] = await withScopes(db, rows);
  return api;
}

/** The name of an API and the description of each of its scopes (null where none was given). */
export async function findApiScopeDescriptions(
  db: Db,
  identifier: string,
): Promise<{ name: string; descriptions: Map<string, string | null> } | undefined> {
  const rows = await db.selectFrom('apis')
    .leftJoin('api_scopes', 'api_scopes.api_id', 'apis.id')
    .select(['apis.name', 'api_scopes.name as scope', 'api_scopes.description'])
    .where('apis.identifier', '=', identifier)
    .execute();
  if (rows.length === 0) return undefined;
  return {
    name: rows[0]!.name,
    descriptions: new Map(rows.filter((row) => row.scope !== null).map((row) => [row.scope!, row.description])),
  };
}
