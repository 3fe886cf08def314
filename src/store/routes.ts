// SQL for route policies (migration 0013): one row per rule, the API named by its identifier.
import { sql, type Selectable } from 'kysely';
import type { Db, RouteRulesTable } from '../db/tables.ts';
import type { RouteRule } from '../domain/routes.ts';

type RouteRow = Selectable<RouteRulesTable> & { identifier: string };

export interface StoredRouteRule extends RouteRule {
  apiId: string;
  createdAt: Date;
  updatedAt: Date;
}

function toRule(row: RouteRow): StoredRouteRule {
  return {
    id: row.id,
    api: row.identifier,
    apiId: row.api_id,
    host: row.host,
    methods: row.methods,
    path: row.path,
    public: row.public,
    scopesAll: row.scopes_all,
    scopesAny: row.scopes_any,
    roles: row.roles,
    clients: row.clients,
    senderConstrained: row.sender_constrained,
    rateLimitPerMinute: row.rate_limit_per_minute,
    cacheSeconds: row.cache_seconds,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function selectRules(db: Db) {
  return db.selectFrom('route_rules')
    .innerJoin('apis', 'apis.id', 'route_rules.api_id')
    .selectAll('route_rules')
    .select('apis.identifier');
}

/** Every rule, in a stable order (API, host, path, id). */
export async function listRouteRules(db: Db, filter: { apiId?: string; host?: string } = {}): Promise<StoredRouteRule[]> {
  let query = selectRules(db);
  if (filter.apiId !== undefined) query = query.where('route_rules.api_id', '=', filter.apiId);
  if (filter.host !== undefined) query = query.where('route_rules.host', '=', filter.host);
  const rows = await query.orderBy('apis.identifier').orderBy('route_rules.host').orderBy('route_rules.path').orderBy('route_rules.id').execute();
  return rows.map(toRule);
}

/** Where a page of rules ends: the sort key of its last rule (API, host, path, id). */
export interface RouteRuleKey { api: string; host: string | null; path: string; id: string }

/**
 * A page of rules in the order of listRouteRules (API, host with "any host" last, path, id),
 * after `after`, by keyset: the sort key compared as one row.
 */
export async function listRouteRulesPage(
  db: Db,
  query: { limit: number; after?: RouteRuleKey; apiId?: string; host?: string; pathPrefix?: string },
): Promise<{ rows: StoredRouteRule[]; more: boolean }> {
  let select = selectRules(db);
  if (query.apiId !== undefined) select = select.where('route_rules.api_id', '=', query.apiId);
  if (query.host !== undefined) select = select.where('route_rules.host', '=', query.host);
  if (query.pathPrefix) select = select.where(sql<boolean>`starts_with(route_rules.path, ${query.pathPrefix})`);
  const after = query.after;
  if (after) {
    select = select.where(sql<boolean>`(apis.identifier, route_rules.host is null, coalesce(route_rules.host, ''), route_rules.path, route_rules.id)
      > (${after.api}, ${after.host === null}, ${after.host ?? ''}, ${after.path}, ${after.id})`);
  }
  const rows = await select
    .orderBy('apis.identifier').orderBy(sql`route_rules.host is null`).orderBy(sql`coalesce(route_rules.host, '')`)
    .orderBy('route_rules.path').orderBy('route_rules.id')
    .limit(query.limit + 1)
    .execute();
  return { rows: rows.slice(0, query.limit).map(toRule), more: rows.length > query.limit };
}

export async function findRouteRule(db: Db, id: string): Promise<StoredRouteRule | undefined> {
  const row = await selectRules(db).where('route_rules.id', '=', id).executeTakeFirst();
  return row ? toRule(row) : undefined;
}

/** Rules of one API that name any of these scopes (to refuse removing them). */
export async function listRulesNamingScopes(db: Db, apiId: string, scopes: readonly string[]): Promise<StoredRouteRule[]> {
  if (scopes.length === 0) return [];
  const rules = await listRouteRules(db, { apiId });
  return rules.filter((rule) => [...rule.scopesAll, ...rule.scopesAny].some((scope) => scopes.includes(scope)));
}

export async function countRulesOfApi(db: Db, apiId: string): Promise<number> {
  const row = await db.selectFrom('route_rules').select((eb) => eb.fn.countAll<string>().as('count'))
    .where('api_id', '=', apiId).executeTakeFirstOrThrow();
  return Number(row.count);
}

/**
 * Serialises rule writes: the tie check (domain/routes.ts findConflict) reads every rule and must
 * not race another writer. Held until the transaction ends.
 */
export async function lockRouteRules(db: Db): Promise<void> {
  await sql`select pg_advisory_xact_lock(${sql.lit(ROUTE_RULES_LOCK)})`.execute(db);
}

// Arbitrary, constant: the pg_advisory_xact_lock key for writes of route rules.
const ROUTE_RULES_LOCK = 727_013;

function columns(rule: Omit<RouteRule, 'id' | 'api'>) {
  return {
    host: rule.host,
    methods: JSON.stringify(rule.methods),
    path: rule.path,
    public: rule.public,
    scopes_all: JSON.stringify(rule.scopesAll),
    scopes_any: JSON.stringify(rule.scopesAny),
    roles: JSON.stringify(rule.roles),
    clients: JSON.stringify(rule.clients),
    sender_constrained: rule.senderConstrained,
    rate_limit_per_minute: rule.rateLimitPerMinute,
    cache_seconds: rule.cacheSeconds,
  };
}

export async function insertRouteRule(db: Db, apiId: string, rule: RouteRule): Promise<void> {
  await db.insertInto('route_rules').values({ id: rule.id, api_id: apiId, ...columns(rule) }).execute();
}

export async function updateRouteRule(db: Db, rule: RouteRule): Promise<void> {
  await db.updateTable('route_rules').set({ ...columns(rule), updated_at: new Date() }).where('id', '=', rule.id).execute();
}

export async function deleteRouteRule(db: Db, id: string): Promise<void> {
  await db.deleteFrom('route_rules').where('id', '=', id).execute();
}
