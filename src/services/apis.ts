// Use-cases for APIs (resource servers): the `aud` of tokens and the scopes they define.
import { randomId } from '../domain/crypto.ts';
import type { Db } from '../db/tables.ts';
import { ACCESS_TOKEN_ALGS, DEFAULT_ACCESS_TOKEN_ALG } from '../domain/signing-keys.ts';
import * as apis from '../store/apis.ts';
import { findClientById, findClientByName } from '../store/clients.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { writeAndPropagate, type Change } from '../propagation/index.ts';
import { conflict, invalid, isUniqueViolation, notFound, ServiceError } from './errors.ts';
import { refuseIfRulesNeed } from './routes.ts';
import { changedFields, checkName, checkOneBinding, checkResourceIdentifier, checkScopes, checkTtl } from './validation.ts';

export { ACCESS_TOKEN_ALGS };
export const TOKEN_FORMATS = ['jwt', 'opaque'] as const;
export type TokenFormat = (typeof TOKEN_FORMATS)[number];

/** APIs are cached by every process (their scopes, formats and requirements decide every token). */
const CONFIG: Change = { kind: 'config' };

export interface ApiView {
  id: string;
  identifier: string;
  name: string;
  scopes: string[];
  /** Plain words for what a scope allows, shown on the consent page (scopes without one: none). */
  scopeDescriptions: Record<string, string>;
  tokenFormat: TokenFormat;
  signingAlg: string;
  accessTokenTtl: number;
  introspectionClientId: string | null;
  /** Token requests for this API must carry a DPoP proof; its tokens are DPoP-bound (RFC 9449). */
  requireDpop: boolean;
  /** Its tokens must be bound to the client's certificate (RFC 8705 §3). */
  requireMtls: boolean;
  /** The client that serves this API: the only one that may exchange its tokens (RFC 8693). */
  ownerClientId: string | null;
  system: boolean;
  createdAt: string;
}

function toView(row: apis.ApiWithScopes): ApiView {
  return {
    id: row.id,
    identifier: row.identifier,
    name: row.name,
    scopes: row.scopes,
    scopeDescriptions: row.scopeDescriptions,
    tokenFormat: row.token_format,
    signingAlg: row.signing_alg,
    accessTokenTtl: row.access_token_ttl,
    introspectionClientId: row.introspection_client_id,
    requireDpop: row.require_dpop,
    requireMtls: row.require_mtls,
    ownerClientId: row.owner_client_id,
    system: row.system,
    createdAt: row.created_at.toISOString(),
  };
}

const MAX_DESCRIPTION = 200;

/** Descriptions name scopes the API defines, in 1 to 200 printable characters (null: remove). */
function checkScopeDescriptions<T extends string | null>(
  descriptions: Record<string, T> | undefined,
  scopes: readonly string[],
): Record<string, T> {
  const checked: Record<string, T> = {};
  for (const [scope, text] of Object.entries(descriptions ?? {})) {
    if (!scopes.includes(scope)) throw invalid(`scope "${scope}" is not defined by this API: describe only its scopes`, 'scopeDescriptions');
    if (text === null) {
      checked[scope] = text;
      continue;
    }
    const trimmed = typeof text === 'string' ? text.trim() : '';
    if (!trimmed || trimmed.length > MAX_DESCRIPTION || /[\u0000-\u001f\u007f]/.test(trimmed)) {
      throw invalid(`the description of "${scope}" must be 1 to ${MAX_DESCRIPTION} characters on one line`, 'scopeDescriptions');
    }
    checked[scope] = trimmed as T;
  }
  return checked;
}

function checkFormat(value: string): TokenFormat {
  if (value !== 'jwt' && value !== 'opaque') throw invalid('token format must be "jwt" or "opaque"', 'tokenFormat');
  return value;
}

function checkAlg(value: string): string {
  if (!(ACCESS_TOKEN_ALGS as readonly string[]).includes(value)) {
    throw invalid(`signing algorithm must be one of ${ACCESS_TOKEN_ALGS.join(', ')}`, 'signingAlg');
  }
  return value;
}

async function resolveClientId(db: Db, ref: string): Promise<string> {
  const client = (await findClientById(db, ref)) ?? (await findClientByName(db, ref));
  if (!client) throw notFound(`unknown client "${ref}"`);
  return client.client_id;
}

export async function requireApi(db: Db, ref: string): Promise<apis.ApiWithScopes> {
  const api = await apis.findApi(db, ref);
  if (!api) throw notFound(`unknown API "${ref}"`);
  return api;
}

export interface CreateApiInput {
  identifier: string;
  name?: string;
  scopes?: string[];
  /** Scope name to plain words (1 to 200 characters), for the consent page. */
  scopeDescriptions?: Record<string, string>;
  tokenFormat?: string;
  signingAlg?: string;
  accessTokenTtl?: number;
  introspectionClient?: string;
  requireDpop?: boolean;
  requireMtls?: boolean;
  /** The client (id or name) that serves this API and may exchange its tokens. */
  owner?: string;
}

export async function createApi(db: Db, input: CreateApiInput, audit: AuditSink): Promise<ApiView> {
  const identifier = checkResourceIdentifier(input.identifier);
  const name = input.name === undefined ? undefined : checkName(input.name);
  const scopes = checkScopes(input.scopes ?? []);
  const tokenFormat = checkFormat(input.tokenFormat ?? 'jwt');
  const signingAlg = checkAlg(input.signingAlg ?? DEFAULT_ACCESS_TOKEN_ALG);
  const accessTokenTtl = checkTtl(input.accessTokenTtl ?? 300);
  checkOneBinding(input.requireDpop === true, input.requireMtls === true, 'an API');
  try {
    const api = await writeAndPropagate(db, CONFIG, async (trx) => {
      const id = randomId('api_');
      const introspectionClientId = input.introspectionClient
        ? await resolveClientId(trx, input.introspectionClient)
        : null;
      await apis.insertApi(trx, {
        id, identifier, name: name ?? identifier, tokenFormat, signingAlg, accessTokenTtl, introspectionClientId,
        requireDpop: input.requireDpop === true,
        requireMtls: input.requireMtls === true,
        ownerClientId: input.owner ? await resolveClientId(trx, input.owner) : null,
      });
      await apis.insertApiScopes(trx, id, scopes);
      await apis.setApiScopeDescriptions(trx, id, checkScopeDescriptions(input.scopeDescriptions, scopes));
      return toView(await requireApi(trx, id));
    });
    audit.record({
      type: 'api.created', target: { type: 'api', id: api.id },
      details: { identifier: api.identifier, name: api.name, scopes: api.scopes },
    });
    return api;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`an API with identifier or name "${name ?? identifier}" already exists`);
    throw error;
  }
}

export async function listApis(db: Db): Promise<ApiView[]> {
  return (await apis.listApis(db)).map(toView);
}

export async function getApi(db: Db, ref: string): Promise<ApiView> {
  return toView(await requireApi(db, ref));
}

export interface UpdateApiInput {
  name?: string;
  addScopes?: string[];
  removeScopes?: string[];
  /** Scope name to plain words; null removes a description. */
  scopeDescriptions?: Record<string, string | null>;
  tokenFormat?: string;
  signingAlg?: string;
  accessTokenTtl?: number;
  /** A client id or name; null removes it. */
  introspectionClient?: string | null;
  requireDpop?: boolean;
  requireMtls?: boolean;
  /** The client (id or name) that serves this API; null removes it. */
  owner?: string | null;
}

export async function updateApi(
  db: Db,
  ref: string,
  input: UpdateApiInput,
  audit: AuditSink,
): Promise<ApiView> {
  const addScopes = checkScopes(input.addScopes ?? [], 'addScopes');
  const removeScopes = checkScopes(input.removeScopes ?? [], 'removeScopes');
  try {
    const updated = await writeAndPropagate(db, CONFIG, async (trx) => {
      const api = await requireApi(trx, ref);
      if (api.system && (input.name !== undefined || removeScopes.length || addScopes.length)) {
        throw new ServiceError('forbidden', `the ${api.name} API is built in: its name and scopes cannot change`);
      }
      if (api.system && input.tokenFormat === 'opaque') {
        // The admin API accepts only JWTs for this API: opaque tokens would lock every admin out.
        throw new ServiceError('forbidden', `the ${api.name} API is built in: its tokens must stay JWTs`);
      }
      if (api.system && input.requireDpop) {
        // The admin API takes Bearer tokens only (it refuses DPoP-bound ones, RFC 9449 §7.2).
        throw new ServiceError('forbidden', `the ${api.name} API is built in: its tokens cannot require DPoP`);
      }
      checkOneBinding(input.requireDpop ?? api.require_dpop, input.requireMtls ?? api.require_mtls, 'an API');
      const unknown = removeScopes.filter((scope) => !api.scopes.includes(scope));
      if (unknown.length) throw invalid(`API ${api.identifier} does not define ${unknown.join(', ')}`, 'removeScopes');
      await refuseIfRulesNeed(trx, api, removeScopes);
      await apis.updateApi(trx, api.id, {
        name: input.name === undefined ? undefined : checkName(input.name),
        tokenFormat: input.tokenFormat === undefined ? undefined : checkFormat(input.tokenFormat),
        signingAlg: input.signingAlg === undefined ? undefined : checkAlg(input.signingAlg),
        accessTokenTtl: input.accessTokenTtl === undefined ? undefined : checkTtl(input.accessTokenTtl),
        introspectionClientId: input.introspectionClient === undefined
          ? undefined
          : input.introspectionClient === null ? null : await resolveClientId(trx, input.introspectionClient),
        requireDpop: input.requireDpop,
        requireMtls: input.requireMtls,
        ownerClientId: input.owner === undefined
          ? undefined
          : input.owner === null ? null : await resolveClientId(trx, input.owner),
      });
      await apis.insertApiScopes(trx, api.id, addScopes);
      await apis.deleteApiScopes(trx, api.id, removeScopes);
      const remaining = [...api.scopes, ...addScopes].filter((scope) => !removeScopes.includes(scope));
      await apis.setApiScopeDescriptions(trx, api.id, checkScopeDescriptions(input.scopeDescriptions, remaining));
      return toView(await requireApi(trx, api.id));
    });
    audit.record({
      type: 'api.updated', target: { type: 'api', id: updated.id },
      details: { identifier: updated.identifier, fields: changedFields(input), scopes: updated.scopes },
    });
    return updated;
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict(`an API named "${input.name}" already exists`);
    throw error;
  }
}

export async function deleteApi(db: Db, ref: string, audit: AuditSink): Promise<ApiView> {
  const deleted = await writeAndPropagate(db, CONFIG, async (trx) => {
    const api = await requireApi(trx, ref);
    if (api.system) throw new ServiceError('forbidden', `the ${api.name} API is built in and cannot be deleted`);
    await refuseIfRulesNeed(trx, api, 'all');
    await apis.deleteApi(trx, api.id);
    return toView(api);
  });
  audit.record({ type: 'api.deleted', target: { type: 'api', id: deleted.id }, details: { identifier: deleted.identifier } });
  return deleted;
}
