// Token exchange (RFC 8693) at the token endpoint, through oidc-provider's registerGrantType. A
// service that receives a token for the API it serves (its owner) trades it for a token of another
// API, on behalf of the token's subject: never more than the subject holds there now, never more
// than the service may ask for on others' behalf (its exchange permission), never longer than the
// subject token lives. The new token names the service in `act` (delegation) unless the service
// may impersonate, and carries its lineage so that revoking anything it came from revokes it
// (token-policy.ts lineageRevoked). The new token is bound as any token of the client and API
// is: to the key of a DPoP proof sent with the request, to the client's certificate when its
// tokens are certificate-bound. docs/token-exchange.md.
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Db } from '../db/tables.ts';
import type { AuditSink } from '../domain/audit-events.ts';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPES, actDepth, actorChain, type ActClaim, type Lineage } from '../domain/token-exchange.ts';
import { currentPersonGrants } from './accounts.ts';
import type { ApiEntry, ClientEntry, Directory } from './directory.ts';
import { readPresentedToken, type PresentedToken } from './exchange-subjects.ts';
import { requireApi, resourceServerInfo } from './resource-policy.ts';
import { GRANT_TYPE_NOT_ALLOWED } from './provider-texts.ts';
import type { TokenPolicy } from './token-policy.ts';
import type { TokenDpop } from './token-dpop.ts';
import type { TrustedJwtVerifier } from '../services/trusted-jwt.ts';
import { listOwnedApis } from '../store/exchange-permissions.ts';

export interface TokenExchangeDeps {
  db: Db;
  directory: Directory;
  tokenPolicy: TokenPolicy;
  audit: AuditSink;
  /** How many exchanges a chain may hold (the first exchange is 1). */
  maxDepth: number;
  /** The request's client certificate, for tokens bound to it (RFC 8705 §3). */
  certificateOf(ctx: KoaContextWithOIDC): unknown;
  hasCertificate(ctx: KoaContextWithOIDC): boolean;
  /** DPoP proofs of the request (RFC 9449), checked as the provider checks them for its grants. */
  dpop: TokenDpop;
  /** JWTs of trusted issuers as subject tokens (`urn:ietf:params:oauth:token-type:jwt`). */
  trustedJwts?: TrustedJwtVerifier;
}

const PARAMETERS = [
  'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type',
  'resource', 'audience', 'scope',
];

/** The claims each exchanged token is given (extraTokenClaims in configuration.ts). */
const exchangeClaims = new WeakMap<object, Record<string, unknown>>();

/** What an exchanged token carries besides the provider's claims; undefined for other tokens. */
export function claimsOfExchangedToken(token: object): Record<string, unknown> | undefined {
  return exchangeClaims.get(token);
}

// RFC 6749 §5.2 / RFC 8693 §2.2.2 errors, each saying which rule refused.
const invalidRequest = (description: string) => new errors.InvalidRequest(description);
const invalidGrant = (description: string) => new errors.CustomOIDCProviderError('invalid_grant', description);
const invalidTarget = (description: string) => new errors.InvalidTarget(description);
const invalidScope = (description: string, scope = '') => new errors.InvalidScope(description, scope);

export interface Params {
  subject_token?: string; subject_token_type?: string; actor_token?: string; actor_token_type?: string;
  requested_token_type?: string; resource?: string | string[]; audience?: string; scope?: string;
}

export function checkRequest(params: Params, trusted: boolean): void {
  if (!params.subject_token) throw invalidRequest('missing required parameter \'subject_token\'');
  if (!params.subject_token_type) throw invalidRequest('missing required parameter \'subject_token_type\'');
  const types: string[] = trusted ? [TOKEN_TYPES.accessToken, TOKEN_TYPES.jwt] : [TOKEN_TYPES.accessToken];
  if (!types.includes(params.subject_token_type)) {
    throw invalidRequest(`unsupported subject_token_type: Postern exchanges ${types.join(' and ')}`);
  }
  // RFC 8693 §2.1: actor_token_type is required with actor_token, and only with it.
  if (params.actor_token !== undefined && !params.actor_token_type) throw invalidRequest('actor_token_type is required with actor_token');
  if (params.actor_token === undefined && params.actor_token_type !== undefined) throw invalidRequest('actor_token_type without actor_token');
  if (params.actor_token_type !== undefined && params.actor_token_type !== TOKEN_TYPES.accessToken) {
    throw invalidRequest(`unsupported actor_token_type: Postern accepts ${TOKEN_TYPES.accessToken}`);
  }
  if (params.requested_token_type !== undefined && params.requested_token_type !== TOKEN_TYPES.accessToken) {
    throw invalidRequest(`unsupported requested_token_type: Postern issues ${TOKEN_TYPES.accessToken}`);
  }
}

/** RFC 8693 §2.1: `resource` and `audience` name the one API the new token is for. */
export function targetOf(params: Params, client: ClientEntry): string {
  const resources = params.resource === undefined ? [] : [params.resource].flat();
  if (resources.length > 1) throw invalidTarget('name one API: token exchange issues a token for a single resource');
  const [resource] = resources;
  const { audience } = params;
  if (resource !== undefined && audience !== undefined && resource !== audience) {
    throw invalidTarget('resource and audience name different APIs: name one');
  }
  const target = resource ?? audience;
  if (target !== undefined) return target;
  const permitted = [...client.exchange.keys()];
  if (permitted.length === 1) return permitted[0]!;
  throw invalidTarget('this client may exchange for several APIs: name one with resource or audience');
}

/** What the subject holds on the API now: a person's roles, or a client's. */
export async function subjectHoldings(
  deps: Pick<TokenExchangeDeps, 'db' | 'directory'>, subject: PresentedToken, api: ApiEntry,
): Promise<{ scopes: Set<string>; roles: string[] }> {
  const rootClient = subject.lineage?.c[0] ?? subject.clientId;
  if (subject.sub === rootClient) {
    const client = await deps.directory.client(subject.sub);
    if (!client?.enabled) throw invalidGrant('the subject of the subject_token is a client that is disabled or deleted');
    const grant = client.grants.get(api.identifier);
    return { scopes: grant?.scopes ?? new Set(), roles: [...(grant?.roles ?? [])].sort() };
  }
  const person = await currentPersonGrants(deps.db, subject.sub, api.identifier);
  if (!person) throw invalidGrant('the subject of the subject_token is a person who is disabled or deleted');
  return person;
}

/** The intersection of what was asked, what the client may ask for, and what the subject holds. */
export function grantedScopes(requested: string | undefined, api: ApiEntry, permitted: Set<string>, held: Set<string>): string[] {
  const asked = (requested ?? '').split(' ').filter(Boolean);
  for (const scope of asked) {
    if (!api.scopes.has(scope)) throw invalidScope(`scope "${scope}" is not defined by ${api.identifier}`, scope);
    if (!permitted.has(scope)) throw invalidScope(`scope "${scope}" is not one this client may ask for on others' behalf`, scope);
    if (!held.has(scope)) throw invalidScope(`the subject does not hold scope "${scope}" on ${api.identifier}`, scope);
  }
  if (asked.length) return [...new Set(asked)];
  const scopes = [...permitted].filter((scope) => held.has(scope) && api.scopes.has(scope)).sort();
  if (!scopes.length) throw invalidScope(`the subject holds none of the scopes this client may ask for on ${api.identifier}`);
  return scopes;
}

async function exchange(provider: Provider, deps: TokenExchangeDeps, ctx: KoaContextWithOIDC): Promise<void> {
  const params = ctx.oidc.params as Params;
  checkRequest(params, deps.trustedJwts !== undefined);
  // RFC 9449 §5: a proof, when sent, is checked before anything else, as for the provider's grants.
  const proof = await deps.dpop.check(ctx);
  const { clientId } = ctx.oidc.client!;
  const client = await deps.directory.client(clientId);
  if (!client?.exchange.size) throw new errors.UnauthorizedClient('this client has no exchange permission');

  const read = (value: string, type: string) => readPresentedToken(provider, deps.tokenPolicy, deps.directory, value, type);
  const trusted = params.subject_token_type === TOKEN_TYPES.jwt
    ? { verifier: deps.trustedJwts, audiences: await listOwnedApis(deps.db, clientId) }
    : undefined;
  const subject = await readPresentedToken(provider, deps.tokenPolicy, deps.directory, params.subject_token!, params.subject_token_type!, trusted);
  if (typeof subject === 'string') throw invalidGrant(subject);
  if (!subject) throw invalidGrant('subject_token is not an active access token of this server');
  // Who may exchange what: only the service behind an API the token is for.
  let owned = false;
  for (const aud of subject.aud) if ((await deps.directory.api(aud))?.ownerClientId === clientId) owned = true;
  if (!owned) throw invalidGrant('the subject_token is not for an API this client serves (its owner)');

  let actor: PresentedToken | undefined;
  if (params.actor_token !== undefined) {
    const read_ = await read(params.actor_token, params.actor_token_type!);
    actor = typeof read_ === 'string' ? undefined : read_;
    if (!actor) throw invalidGrant('actor_token is not an active access token of this server');
    if (actor.sub !== clientId || actor.clientId !== clientId) throw invalidGrant('actor_token must be a token of the client making the request');
  }
  // RFC 8693 §4.4: the subject token says who may act for it.
  const mayAct = subject.mayAct as { sub?: unknown } | undefined;
  if (mayAct !== undefined && (typeof mayAct !== 'object' || mayAct === null || mayAct.sub !== clientId)) {
    throw invalidGrant('the subject_token\'s may_act does not name this client');
  }
  const depth = (subject.lineage?.c.length ?? 0) + 1;
  if (depth > deps.maxDepth) throw invalidGrant(`the exchange chain would be ${depth} deep; at most ${deps.maxDepth} exchanges are allowed`);
  // Delegation by default (RFC 8693 §4.1): the client acts for the subject, after earlier actors.
  const impersonate = client.mayImpersonate && actor === undefined;
  const act: ActClaim | undefined = impersonate ? subject.act : { sub: clientId, ...(subject.act ? { act: subject.act } : {}) };
  if (actDepth(act) > deps.maxDepth) throw invalidGrant(`the act claim would nest more than ${deps.maxDepth} actors`);

  const target = targetOf(params, client);
  const api = await deps.directory.api(target);
  if (!api) throw invalidTarget('unknown resource');
  const permitted = client.exchange.get(api.identifier);
  if (!permitted) throw invalidTarget(`this client may not exchange tokens for ${api.identifier}`);
  // What the API or client requires of the request: a DPoP proof (RFC 9449 §5), a certificate (RFC 8705 §3).
  await requireApi(ctx, deps.directory, api.identifier, deps.hasCertificate);

  const held = await subjectHoldings(deps, subject, api);
  const scopes = grantedScopes(params.scope, api, permitted, held.scopes);
  const now = Math.floor(Date.now() / 1000);
  const ttl = Math.min(api.accessTokenTtl, subject.exp - now, actor ? actor.exp - now : Infinity);
  if (ttl <= 0) throw invalidGrant('subject_token or actor_token has expired');

  const lineage: Lineage = {
    t: [...(subject.lineage?.t ?? []), subject.key, ...(actor ? [actor.key] : [])].filter(Boolean),
    c: [...(subject.lineage?.c ?? []), subject.clientId],
  };
  // No grantId: the token belongs to no grant of this client; the subject's grant is in `gid`.
  const token = new provider.AccessToken({
    accountId: subject.sub, client: ctx.oidc.client!, gty: 'token_exchange', scope: scopes.join(' '),
  } as unknown as ConstructorParameters<typeof provider.AccessToken>[0]);
  token.resourceServer = resourceServerInfo(api, scopes) as never;
  (token as unknown as { expiresIn: number }).expiresIn = ttl;
  const cert = client.metadata.tls_client_certificate_bound_access_tokens === true ? deps.certificateOf(ctx) : undefined;
  if (cert) token.setThumbprint('x5t', cert as never);
  await deps.dpop.bind(ctx, proof, token);
  exchangeClaims.set(token, { roles: held.roles, ...(act ? { act } : {}), lin: lineage, ...(subject.gid ? { gid: subject.gid } : {}) });
  ctx.oidc.entity('AccessToken', token);
  const value = await token.save();

  recordExchange(deps.audit, ctx, { clientId, api, subject: subject.sub, act, scopes, impersonate });
  // RFC 8693 §2.2.1.
  ctx.body = {
    access_token: value,
    issued_token_type: TOKEN_TYPES.accessToken,
    token_type: token.tokenType,
    expires_in: ttl,
    scope: scopes.join(' '),
  };
}

/** The audit record of an exchange (subject, actor chain, target), whichever path answered it. */
export function recordExchange(
  audit: AuditSink,
  ctx: { ip: string; state?: { requestId?: unknown } },
  exchange: { clientId: string; api: ApiEntry; subject: string; act: ActClaim | undefined; scopes: string[]; impersonate: boolean },
): void {
  const { clientId, api, act, scopes } = exchange;
  audit.record({
    type: 'token.exchanged',
    actor: { type: 'client', id: clientId },
    target: { type: 'api', id: api.id },
    sourceAddress: ctx.ip,
    requestId: (ctx.state?.requestId as string | undefined) ?? null,
    details: { subject: exchange.subject, actors: actorChain(act), api: api.identifier, scopes, reason: exchange.impersonate ? 'impersonation' : 'delegation' },
  });
}

/**
 * Registers the grant type; the provider then checks each client may use it (an exchange
 * permission implies it, client-adapter.ts). A client without one is told so as RFC 6749 §5.2
 * says, unauthorized_client, where the provider says invalid_request.
 */
export function registerTokenExchange(provider: Provider, deps: TokenExchangeDeps): void {
  // No parameter may be given twice (the provider refuses duplicates: invalid_request).
  provider.registerGrantType(TOKEN_EXCHANGE_GRANT, (ctx: KoaContextWithOIDC) => exchange(provider, deps, ctx), PARAMETERS);
  provider.use(async (ctx, next) => {
    await next();
    const body = ctx.body as { error?: string; error_description?: string } | undefined;
    if (ctx.oidc?.route !== 'token' || ctx.status !== 400 || body?.error_description !== GRANT_TYPE_NOT_ALLOWED) return;
    if ((ctx.oidc.params as Params | undefined)?.['grant_type' as keyof Params] !== TOKEN_EXCHANGE_GRANT) return;
    ctx.body = {
      error: 'unauthorized_client',
      error_description: 'this client may not exchange tokens: it has no exchange permission (postern clients update --may-exchange)',
    };
  });
}
