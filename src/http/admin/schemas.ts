// The admin API's request and response schemas. Requests are validated with these, and the
// OpenAPI document is generated from these: the two cannot drift apart.
import { z } from 'zod';
import { ACCESS_TOKEN_ALGS, TOKEN_FORMATS, type ApiView } from '../../services/apis.ts';
import { AUTH_METHODS, SUPPORTED_GRANTS, type ClientView } from '../../services/clients.ts';
import type { KeyView } from '../../services/key-rotation.ts';
import { TLS_SUBJECT_FIELDS, type TlsSubjectField } from '../../domain/certificates.ts';
import type { AuditEventView } from '../../services/audit-queries.ts';
import { MAX_TOKEN_TTL_SECONDS, type RegistrationTokenView } from '../../services/registration.ts';
import type { RoleView } from '../../services/roles.ts';
import type { RevokeClientTokensResult } from '../../services/tokens.ts';
import { federationBody, federationView } from './issuer-schemas.ts';

// Bounds keep hostile input small; the services apply the precise rules (names, scope tokens).
const ref = z.string().min(1).max(2000);
const name = z.string().min(1).max(100);
const scopes = z.array(z.string().min(1).max(128)).max(100);
const timestamp = z.string().meta({ format: 'date-time' });
// Shapes only; the services check every key and network (src/services/client-auth.ts).
const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(20) })
  .meta({ id: 'Jwks', description: 'a JWK Set of public keys (RFC 7517 §5)' });
const jwksUri = z.string().min(1).max(2000).meta({ description: 'https URL of the client\'s JWK Set' });
const networks = z.array(z.string().min(1).max(50)).max(100)
  .meta({ description: 'CIDR ranges (IPv4 or IPv6) the client may authenticate from; empty: anywhere' });
const requireDpop = z.boolean().meta({ description: 'its tokens must be DPoP-bound (RFC 9449 dpop_bound_access_tokens)' });
const requireMtls = z.boolean().meta({
  description: 'its tokens are bound to its TLS certificate (RFC 8705 tls_client_certificate_bound_access_tokens); '
    + 'by default yes for tls_client_auth and self_signed_tls_client_auth clients',
});
const tlsSubject = z.strictObject({
  field: z.enum(Object.keys(TLS_SUBJECT_FIELDS) as [TlsSubjectField, ...TlsSubjectField[]]),
  value: z.string().min(1).max(1000),
}).meta({
  id: 'TlsSubject',
  description: 'tls_client_auth: the subject DN (RFC 4514, e.g. "CN=orders,O=Example") or the SAN entry its certificate must carry (RFC 8705 §2.1.2)',
});
const certificates = z.array(z.string().min(1).max(20_000)).min(1).max(20)
  .meta({ description: 'self_signed_tls_client_auth: its certificates, PEM (RFC 8705 §2.2)' });

// ---- path and query parameters
export const idParams = z.strictObject({
  id: ref.meta({ description: 'id or name (an API also by its identifier)' }),
});
export const roleClientParams = z.strictObject({
  id: ref.meta({ description: 'role id or name' }),
  clientId: ref.meta({ description: 'client id or name' }),
});
export const listClientsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).optional().meta({ description: 'page size, 50 by default' }),
  cursor: z.string().min(1).max(400).optional().meta({ description: 'nextCursor of the previous page' }),
  namePrefix: z.string().min(1).max(100).optional(),
  enabled: z.enum(['true', 'false']).transform((value) => value === 'true').optional(),
  role: ref.optional().meta({ description: 'only clients holding this role (id or name)' }),
});

const isoDate = z.iso.datetime({ offset: true }).transform((value) => new Date(value));
export const listAuditEventsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).optional().meta({ description: 'page size, 100 by default' }),
  cursor: z.string().min(1).max(100).optional().meta({ description: 'nextCursor of the previous page' }),
  since: isoDate.optional().meta({ description: 'events at or after this time (RFC 3339)' }),
  until: isoDate.optional().meta({ description: 'events before this time (RFC 3339)' }),
  type: z.string().min(1).max(2000).optional()
    .transform((value) => value?.split(',').map((item) => item.trim()).filter(Boolean))
    .meta({ description: 'event types, comma-separated; "client.*" names a family' }),
  actor: ref.optional().meta({ description: 'actor id: a client id, a user id, an operator (OS user)' }),
  client: ref.optional().meta({ description: 'client id or name: events where it is actor or target' }),
  user: ref.optional().meta({ description: 'user id' }),
});
export const tokenIdParams = z.strictObject({ id: ref.meta({ description: 'registration token id (rt_...)' }) });

// ---- request bodies
export const createRegistrationTokenBody = z.strictObject({
  roles: z.array(ref).max(100).optional().meta({ description: 'roles a client registered with it gets (ids or names)' }),
  maxUses: z.int().min(1).max(100_000).optional().meta({ description: 'how many clients it may register; 1 by default' }),
  ttlSeconds: z.int().min(60).max(MAX_TOKEN_TTL_SECONDS).optional().meta({ description: 'lifetime; 3600 by default' }),
  description: z.string().max(1000).optional(),
}).meta({ id: 'CreateRegistrationToken' });

const scopeDescription = z.string().min(1).max(200);
export const createApiBody = z.strictObject({
  identifier: ref.meta({ description: 'resource indicator (RFC 8707), the `aud` of its tokens' }),
  name: name.optional(),
  scopes: scopes.optional(),
  scopeDescriptions: z.record(z.string().max(128), scopeDescription).optional()
    .meta({ description: 'scope name to plain words, shown on the consent page' }),
  tokenFormat: z.enum(TOKEN_FORMATS).optional(),
  signingAlg: z.enum(ACCESS_TOKEN_ALGS).optional(),
  accessTokenTtl: z.int().min(1).max(86400).optional(),
  introspectionClient: ref.optional().meta({ description: 'client id or name' }),
  requireDpop: z.boolean().optional().meta({ description: 'token requests must carry a DPoP proof (RFC 9449)' }),
  requireMtls: z.boolean().optional().meta({ description: 'its tokens must be bound to the client\'s TLS certificate (RFC 8705 §3)' }),
  owner: ref.optional().meta({ description: 'the client (id or name) that serves this API: the only one that may exchange its tokens (RFC 8693)' }),
}).meta({ id: 'CreateApi' });

export const updateApiBody = z.strictObject({
  name: name.optional(),
  addScopes: scopes.optional(),
  removeScopes: scopes.optional().meta({ description: 'removing a scope removes its grants' }),
  scopeDescriptions: z.record(z.string().max(128), scopeDescription.nullable()).optional()
    .meta({ description: 'scope name to plain words for the consent page; null removes one' }),
  tokenFormat: z.enum(TOKEN_FORMATS).optional(),
  signingAlg: z.enum(ACCESS_TOKEN_ALGS).optional(),
  accessTokenTtl: z.int().min(1).max(86400).optional(),
  introspectionClient: ref.nullable().optional().meta({ description: 'client id or name; null removes it' }),
  requireDpop: z.boolean().optional().meta({ description: 'token requests must carry a DPoP proof (RFC 9449)' }),
  requireMtls: z.boolean().optional().meta({ description: 'its tokens must be bound to the client\'s TLS certificate (RFC 8705 §3)' }),
  owner: ref.nullable().optional().meta({ description: 'the client (id or name) that serves this API and may exchange its tokens; null removes it' }),
}).meta({ id: 'UpdateApi' });

/** Token exchange (RFC 8693) permissions: per API, the scopes a client may ask for on others' behalf. */
const mayExchange = z.array(z.strictObject({ api: ref.meta({ description: 'API id, identifier or name' }), scopes: scopes.min(1) })).max(100);

export const createClientBody = z.strictObject({
  name,
  grantTypes: z.array(z.enum(SUPPORTED_GRANTS)).max(10).optional(),
  roles: z.array(ref).max(100).optional().meta({ description: 'role ids or names' }),
  tokenEndpointAuthMethod: z.enum(AUTH_METHODS).optional()
    .meta({ description: 'private_key_jwt when jwks or jwksUri is given, tls_client_auth with tlsSubject, self_signed_tls_client_auth with certificates, else client_secret_basic' }),
  jwks: jwks.optional(),
  jwksUri: jwksUri.optional(),
  tlsSubject: tlsSubject.optional(),
  certificates: certificates.optional(),
  allowedNetworks: networks.optional(),
  requireDpop: requireDpop.optional(),
  requireMtls: requireMtls.optional(),
  redirectUris: z.array(z.string().max(2000)).max(50).optional().meta({ description: 'authorization_code clients: exact redirect URIs' }),
  postLogoutRedirectUris: z.array(z.string().max(2000)).max(50).optional(),
  public: z.boolean().optional().meta({ description: 'no secret: SPAs and native apps (PKCE only)' }),
  firstParty: z.boolean().optional().meta({ description: 'skip the consent screen' }),
  federated: federationBody.optional(),
  mayExchange: mayExchange.optional()
    .meta({ description: 'token exchange (RFC 8693): the scopes of other APIs it may ask for on behalf of the subjects of tokens it receives. Implies the token-exchange grant type' }),
  mayImpersonate: z.boolean().optional()
    .meta({ description: 'its exchanged tokens carry no `act` claim naming it (impersonation); off by default' }),
}).meta({ id: 'CreateClient' });

export const updateClientBody = z.strictObject({
  name: name.optional(),
  enabled: z.boolean().optional(),
  jwks: jwks.optional().meta({ description: 'private_key_jwt clients: replaces the keys (and any jwksUri)' }),
  jwksUri: jwksUri.optional(),
  tlsSubject: tlsSubject.optional().meta({ description: 'tls_client_auth clients: replaces the subject' }),
  certificates: certificates.optional().meta({ description: 'self_signed_tls_client_auth clients: replaces the certificates' }),
  allowedNetworks: networks.optional().meta({ description: 'replaces the list; [] lifts the restriction' }),
  requireDpop: requireDpop.optional(),
  requireMtls: requireMtls.optional(),
  mayExchange: mayExchange.optional()
    .meta({ description: 'token exchange (RFC 8693): replaces the scopes of other APIs it may ask for on behalf of the subjects of tokens it receives; [] takes them away. Implies the token-exchange grant type' }),
  mayImpersonate: z.boolean().optional()
    .meta({ description: 'its exchanged tokens carry no `act` claim naming it (impersonation); off by default' }),
  federated: federationBody.optional().meta({ description: 'federated_jwt clients: replaces the binding' }),
  redirectUris: z.array(z.string().max(2000)).max(50).optional()
    .meta({ description: 'authorization_code clients: replaces the exact redirect URIs (at least one; https, http on a loopback address, or a private-use scheme for a public app; no fragment)' }),
  postLogoutRedirectUris: z.array(z.string().max(2000)).max(50).optional()
    .meta({ description: 'authorization_code clients: replaces where people may return after logging out, under the same rules; [] removes them' }),
}).meta({ id: 'UpdateClient' });

export const rotateSecretBody = z.strictObject({
  keepOldForSeconds: z.int().min(0).max(90 * 86400).optional()
    .meta({ description: 'how long the older secrets keep working (0, the default: they stop now)' }),
}).meta({ id: 'RotateSecret' });

export const grantBody = z.strictObject({
  api: ref.meta({ description: 'API id, identifier or name' }),
  scopes: scopes.min(1),
}).meta({ id: 'Grant' });

export const createRoleBody = z.strictObject({
  name,
  description: z.string().max(1000).optional(),
  grants: z.array(grantBody).max(100).optional(),
}).meta({ id: 'CreateRole' });

export const updateRoleBody = z.strictObject({
  name: name.optional(),
  description: z.string().max(1000).nullable().optional(),
}).meta({ id: 'UpdateRole' });

// ---- responses (`satisfies` keeps them in step with the services' views)
export const apiView = z.object({
  id: z.string(),
  identifier: z.string(),
  name: z.string(),
  scopes: z.array(z.string()),
  scopeDescriptions: z.record(z.string(), z.string()),
  tokenFormat: z.enum(TOKEN_FORMATS),
  signingAlg: z.string(),
  accessTokenTtl: z.int(),
  introspectionClientId: z.string().nullable(),
  requireDpop: z.boolean(),
  requireMtls: z.boolean(),
  ownerClientId: z.string().nullable().meta({ description: 'the client that serves this API and may exchange its tokens' }),
  system: z.boolean(),
  createdAt: timestamp,
}).meta({ id: 'Api' }) satisfies z.ZodType<ApiView>;

export const clientView = z.object({
  clientId: z.string(),
  name: z.string(),
  enabled: z.boolean(),
  grantTypes: z.array(z.string()),
  tokenEndpointAuthMethod: z.string(),
  jwks: jwks.nullable(),
  jwksUri: z.string().nullable(),
  allowedNetworks: z.array(z.string()),
  requireDpop: z.boolean(),
  tlsSubject: tlsSubject.nullable(),
  certificates: z.array(z.object({ thumbprint: z.string().meta({ description: 'x5t#S256' }), subject: z.string(), expiresAt: timestamp })),
  requireMtls: z.boolean(),
  redirectUris: z.array(z.string()),
  postLogoutRedirectUris: z.array(z.string()),
  public: z.boolean().meta({ description: 'a public client has no secret (PKCE only)' }),
  firstParty: z.boolean().meta({ description: 'first-party apps skip the consent screen' }),
  roles: z.array(z.string()),
  secrets: z.array(z.object({ id: z.string(), createdAt: timestamp, expiresAt: timestamp.nullable() })),
  mayExchange: z.array(z.object({ api: z.string(), scopes: z.array(z.string()) }))
    .meta({ description: 'token exchange: the scopes of other APIs it may ask for on others\' behalf' }),
  mayImpersonate: z.boolean(),
  ownsApis: z.array(z.string()).meta({ description: 'the APIs it serves: it may exchange tokens issued for them' }),
  federation: federationView.nullable(),
  createdAt: timestamp,
}).meta({ id: 'Client' }) satisfies z.ZodType<ClientView>;

export const clientWithSecret = z.object({
  client: clientView,
  clientSecret: z.string().nullable()
    .meta({ description: 'shown only in this response; Postern keeps a hash. null for private_key_jwt and public clients' }),
}).meta({ id: 'ClientWithSecret' });

export const rotatedSecret = z.object({
  client: clientView,
  clientSecret: z.string().meta({ description: 'shown only in this response; Postern keeps a hash' }),
  oldSecretsExpireAt: timestamp,
}).meta({ id: 'RotatedSecret' });

export const roleView = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  grants: z.array(z.object({ api: z.string(), scopes: z.array(z.string()) })),
  clients: z.array(z.string()).meta({ description: 'client ids' }),
  users: z.array(z.string()).meta({ description: 'usernames' }),
  createdAt: timestamp,
}).meta({ id: 'Role' }) satisfies z.ZodType<RoleView>;

export const keyView = z.object({
  kid: z.string(),
  alg: z.string(),
  kty: z.string(),
  state: z.enum(['next', 'active', 'retiring', 'retired'])
    .meta({ description: 'next: published, not signing yet; active: signing; retiring: published, no longer signing; retired: unpublished' }),
  createdAt: timestamp.meta({ description: 'published in JWKS from then on' }),
  activatesAt: timestamp.meta({ description: 'signs from then on' }),
  retiresAt: timestamp.nullable().meta({ description: 'stops signing then; null while no newer key is scheduled' }),
  removeAfter: timestamp.nullable().meta({ description: 'leaves the JWKS then, once every token it signed has expired' }),
}).meta({ id: 'Key' }) satisfies z.ZodType<KeyView>;

export const revokedTokens = z.object({
  clientId: z.string(),
  revokedBefore: timestamp.meta({ description: 'tokens of the client issued before this are inactive' }),
  deletedArtifacts: z.int().meta({ description: 'stored opaque/refresh tokens, codes and grants deleted' }),
}).meta({ id: 'RevokedTokens' }) satisfies z.ZodType<RevokeClientTokensResult>;

export const auditEventView = z.object({
  id: z.string(),
  occurredAt: timestamp,
  type: z.string(),
  actor: z.object({ type: z.string(), id: z.string().nullable() }),
  target: z.object({ type: z.string(), id: z.string().nullable() }).nullable(),
  clientId: z.string().nullable(),
  userId: z.string().nullable(),
  outcome: z.enum(['success', 'failure']),
  sourceAddress: z.string().nullable(),
  requestId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).meta({ description: 'allow-listed details; never a secret or token' }),
}).meta({ id: 'AuditEvent' }) satisfies z.ZodType<AuditEventView>;

export const auditEventPage = z.object({
  items: z.array(auditEventView),
  nextCursor: z.string().nullable().meta({ description: 'pass as cursor for the next (older) page; null on the last' }),
}).meta({ id: 'AuditEventPage' });

export const registrationTokenView = z.object({
  id: z.string(),
  description: z.string().nullable(),
  roles: z.array(z.string()),
  maxUses: z.int(),
  uses: z.int(),
  expiresAt: timestamp,
  revokedAt: timestamp.nullable(),
  createdAt: timestamp,
  state: z.enum(['active', 'used', 'expired', 'revoked']),
}).meta({ id: 'RegistrationToken' }) satisfies z.ZodType<RegistrationTokenView>;

export const registrationTokenWithValue = z.object({
  registrationToken: registrationTokenView,
  token: z.string().meta({ description: 'the initial access token, shown only in this response; Postern keeps a hash' }),
}).meta({ id: 'RegistrationTokenWithValue' });

export const list = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item) });
export const clientPage = z.object({
  items: z.array(clientView),
  nextCursor: z.string().nullable().meta({ description: 'pass as cursor for the next page; null on the last' }),
}).meta({ id: 'ClientPage' });

/** An OpenAPI document: any JSON object (it describes itself through its own version field). */
export const openApiDocument = z.record(z.string(), z.unknown()).meta({ id: 'OpenApiDocument' });
