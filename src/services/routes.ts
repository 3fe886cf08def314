// Use-cases for route policies (docs/routes.md): which requests to an API need what of the caller.
// Every write is checked whole (pattern, host, methods, the API's scopes, roles and clients that
// exist, no tie with another rule), audited, and reaches every process's route table before it
// returns (services/live-routes.ts).
import { randomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { normalizeRouteHost, normalizeRouteMethod, parsePathPattern } from '../domain/route-patterns.ts';
import { findConflict, type RouteRule, type SenderConstraint } from '../domain/routes.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import { findApi } from '../store/apis.ts';
import { findClientById, findClientByName } from '../store/clients.ts';
import { findRole } from '../store/roles.ts';
import * as store from '../store/routes.ts';
import { conflict, invalid, notFound, ServiceError } from './errors.ts';
import { decodeTupleCursor, encodeTupleCursor, pageLimit, type Page } from './paging.ts';
import { changedFields, checkScopes } from './validation.ts';

const ROUTES: Change = { kind: 'routes' };
const MAX_LIST = 50;
const SENDER_CONSTRAINTS: readonly SenderConstraint[] = ['dpop', 'mtls', 'any'];

export interface RouteView extends RouteRule {
  createdAt: string;
  updatedAt: string;
}

function toView(rule: store.StoredRouteRule): RouteView {
  const { apiId: _apiId, createdAt, updatedAt, ...rest } = rule;
  return { ...rest, createdAt: createdAt.toISOString(), updatedAt: updatedAt.toISOString() };
}

export interface RouteInput {
  /** The API: its identifier (resource indicator), name or id. */
  api: string;
  /** null or absent: any host. */
  host?: string | null;
  methods?: string[];
  path: string;
  public?: boolean;
  scopesAll?: string[];
  scopesAny?: string[];
  roles?: string[];
  /** Client ids or names. */
  clients?: string[];
  senderConstrained?: SenderConstraint | null;
  rateLimitPerMinute?: number | null;
  cacheSeconds?: number | null;
}

export type RouteUpdate = Partial<RouteInput>;

function list(values: readonly string[] | undefined, field: string): string[] {
  const unique = [...new Set((values ?? []).map((value) => String(value).trim()).filter(Boolean))];
  if (unique.length > MAX_LIST) throw invalid(`${field} may name at most ${MAX_LIST} entries`, field);
  return unique;
}

function wholeNumber(value: number | null | undefined, min: number, max: number, field: string): number | null {
  if (value === null || value === undefined) return null;
  if (!Number.isInteger(value) || value < min || value > max) throw invalid(`${field} must be a whole number from ${min} to ${max}`, field);
  return value;
}

/** Checks a whole rule against the database; returns it as stored, with the API's row id. */
async function checkRule(db: Db, id: string, input: RouteInput): Promise<{ rule: RouteRule; apiId: string }> {
  const api = await findApi(db, input.api);
  if (!api) throw notFound(`unknown API "${input.api}"`);
  if (api.system) throw new ServiceError('forbidden', `the ${api.name} API is built in: Postern guards it itself`);
  const pattern = parsePathPattern(input.path);
  if ('error' in pattern) throw invalid(`path: ${pattern.error}`, 'path');
  let host: string | null = null;
  if (input.host !== undefined && input.host !== null && input.host !== '') {
    host = normalizeRouteHost(input.host) ?? null;
    if (host === null) throw invalid(`host "${input.host}" is not a host name (with an optional :port)`, 'host');
  }
  const methods = list(input.methods, 'methods').map((value) => {
    const method = normalizeRouteMethod(value);
    if (!method) throw invalid(`"${value}" is not an HTTP method`, 'methods');
    return method;
  });
  const scopesAll = checkScopes(list(input.scopesAll, 'scopesAll'), 'scopesAll');
  const scopesAny = checkScopes(list(input.scopesAny, 'scopesAny'), 'scopesAny');
  // A rule may not name a scope its API lacks: no token could ever carry it.
  const unknown = [...scopesAll, ...scopesAny].filter((scope) => !api.scopes.includes(scope));
  if (unknown.length) throw invalid(`API ${api.identifier} does not define ${unknown.join(', ')}`, 'scopes');
  const roles: string[] = [];
  for (const ref of list(input.roles, 'roles')) {
    const role = await findRole(db, ref);
    if (!role) throw notFound(`unknown role "${ref}"`);
    roles.push(role.name);
  }
  const clients: string[] = [];
  for (const ref of list(input.clients, 'clients')) {
    const client = (await findClientById(db, ref)) ?? (await findClientByName(db, ref));
    if (!client) throw notFound(`unknown client "${ref}"`);
    clients.push(client.client_id);
  }
  const senderConstrained = input.senderConstrained ?? null;
  if (senderConstrained !== null && !SENDER_CONSTRAINTS.includes(senderConstrained)) {
    throw invalid('senderConstrained must be "dpop", "mtls" or "any"', 'senderConstrained');
  }
  const isPublic = input.public === true;
  if (isPublic && (scopesAll.length || scopesAny.length || roles.length || clients.length || senderConstrained)) {
    throw invalid('a public rule needs no token, so it cannot require scopes, roles, clients or a bound token', 'public');
  }
  const rule: RouteRule = {
    id,
    api: api.identifier,
    host,
    methods,
    path: pattern.source,
    public: isPublic,
    scopesAll,
    scopesAny,
    roles: [...new Set(roles)],
    clients: [...new Set(clients)],
    senderConstrained,
    rateLimitPerMinute: wholeNumber(input.rateLimitPerMinute, 1, 1_000_000, 'rateLimitPerMinute'),
    cacheSeconds: wholeNumber(input.cacheSeconds, 0, 86_400, 'cacheSeconds'),
  };
  return { rule, apiId: api.id };
}

/** Refuses a rule that would tie with another (domain/routes.ts): no rule would be the most specific. */
async function refuseTies(trx: Db, rule: RouteRule): Promise<void> {
  await store.lockRouteRules(trx);
  const other = findConflict(await store.listRouteRules(trx), rule);
  if (other) {
    throw conflict(`rule ${other.id} already covers ${other.host ?? 'any host'} ${other.methods.join(',') || 'any method'} ${other.path}: `
      + 'give this rule other methods, or change that one');
  }
}

async function requireRule(db: Db, id: string): Promise<store.StoredRouteRule> {
  const rule = await store.findRouteRule(db, id);
  if (!rule) throw notFound(`unknown route rule "${id}"`);
  return rule;
}

function auditDetails(rule: RouteRule) {
  return { api: rule.api, host: rule.host, methods: rule.methods, path: rule.path };
}

export async function createRoute(db: Db, input: RouteInput, audit: AuditSink): Promise<RouteView> {
  const created = await writeAndPropagate(db, ROUTES, async (trx) => {
    const { rule, apiId } = await checkRule(trx, randomId('route_'), input);
    await refuseTies(trx, rule);
    await store.insertRouteRule(trx, apiId, rule);
    return toView(await requireRule(trx, rule.id));
  });
  audit.record({ type: 'route.created', target: { type: 'route', id: created.id }, details: auditDetails(created) });
  return created;
}

/** The API's row id and the host (normalized) of a filter. */
async function resolveFilter(db: Db, filter: { api?: string; host?: string }): Promise<{ apiId?: string; host?: string }> {
  let apiId: string | undefined;
  if (filter.api !== undefined) {
    const api = await findApi(db, filter.api);
    if (!api) throw notFound(`unknown API "${filter.api}"`);
    apiId = api.id;
  }
  const host = filter.host === undefined ? undefined : normalizeRouteHost(filter.host);
  if (filter.host !== undefined && host === undefined) throw invalid(`host "${filter.host}" is not a host name`, 'host');
  return { apiId, host };
}

export async function listRoutes(db: Db, filter: { api?: string; host?: string } = {}): Promise<RouteView[]> {
  return (await store.listRouteRules(db, await resolveFilter(db, filter))).map(toView);
}

export interface ListRoutesQuery {
  /** The API: its identifier, name or id. */
  api?: string;
  host?: string;
  /** Only rules whose path pattern starts with this. */
  pathPrefix?: string;
  /** 1 to 200; 50 by default. */
  limit?: number;
  /** From a previous page's nextCursor. */
  cursor?: string;
}

/** A page of rules in the order of listRoutes, filtered. */
export async function listRoutesPage(db: Db, query: ListRoutesQuery = {}): Promise<Page<RouteView>> {
  const limit = pageLimit(query.limit);
  const { apiId, host } = await resolveFilter(db, query);
  let after: store.RouteRuleKey | undefined;
  if (query.cursor !== undefined) {
    const [api, hostKey, path, id] = decodeTupleCursor(query.cursor, 4);
    if (typeof api !== 'string' || typeof path !== 'string' || typeof id !== 'string') throw invalid('cursor is not one this server returned', 'cursor');
    after = { api, host: hostKey ?? null, path, id };
  }
  const { rows, more } = await store.listRouteRulesPage(db, { limit, after, apiId, host, pathPrefix: query.pathPrefix });
  const last = rows.at(-1);
  return { items: rows.map(toView), nextCursor: more && last ? encodeTupleCursor([last.api, last.host, last.path, last.id]) : null };
}

export async function getRoute(db: Db, id: string): Promise<RouteView> {
  return toView(await requireRule(db, id));
}

/** Changes the fields given; the rule is checked whole again, as if created. */
export async function updateRoute(db: Db, id: string, input: RouteUpdate, audit: AuditSink): Promise<RouteView> {
  const updated = await writeAndPropagate(db, ROUTES, async (trx) => {
    const current = await requireRule(trx, id);
    const merged: RouteInput = { ...current, ...Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)) };
    const { rule, apiId } = await checkRule(trx, current.id, merged);
    if (apiId !== current.apiId) throw invalid('a rule stays with its API: delete it and create one for the other API', 'api');
    await refuseTies(trx, rule);
    await store.updateRouteRule(trx, rule);
    return toView(await requireRule(trx, rule.id));
  });
  audit.record({
    type: 'route.updated', target: { type: 'route', id: updated.id },
    details: { ...auditDetails(updated), fields: changedFields(input) },
  });
  return updated;
}

export async function deleteRoute(db: Db, id: string, audit: AuditSink): Promise<RouteView> {
  const deleted = await writeAndPropagate(db, ROUTES, async (trx) => {
    const rule = await requireRule(trx, id);
    await store.deleteRouteRule(trx, rule.id);
    return toView(rule);
  });
  audit.record({ type: 'route.deleted', target: { type: 'route', id: deleted.id }, details: auditDetails(deleted) });
  return deleted;
}

/**
 * Refuses to take away what rules name: deleting an API with rules, or removing scopes a rule
 * requires (the rules would then need a scope no token can carry). Called by services/apis.ts
 * inside its transaction.
 */
export async function refuseIfRulesNeed(trx: Db, api: { id: string; identifier: string }, removedScopes: readonly string[] | 'all'): Promise<void> {
  if (removedScopes === 'all') {
    const count = await store.countRulesOfApi(trx, api.id);
    if (count > 0) {
      throw conflict(`API ${api.identifier} has ${count} route rule(s): delete them first (postern routes list --api ${api.identifier})`);
    }
    return;
  }
  const rules = await store.listRulesNamingScopes(trx, api.id, removedScopes);
  if (rules.length > 0) {
    throw conflict(`route rule(s) ${rules.map((rule) => rule.id).join(', ')} require ${removedScopes.join(', ')}: change or delete them first`);
  }
}
