// The closed vocabulary of the audit log: event types, actor kinds, and the detail keys that may
// be stored. In domain/ (a leaf) so that every layer, oidc/ included, can name events
// without importing the service that writes them.

export const AUDIT_EVENT_TYPES = [
  'api.created', 'api.updated', 'api.deleted',
  'client.created', 'client.updated', 'client.deleted', 'client.secret_rotated', 'client.tokens_revoked',
  /** A client limited to some networks tried to authenticate from another (401 invalid_client). */
  'client.network_refused',
  'role.created', 'role.updated', 'role.deleted', 'role.scopes_granted', 'role.scopes_removed',
  'role.assigned', 'role.unassigned',
  'user.created', 'user.updated', 'user.deleted', 'user.role_assigned', 'user.role_unassigned',
  /** Every session and grant of a person ended (revoke-sessions, disable, password change). */
  'user.sessions_revoked',
  'login.success', 'login.failure', 'login.lockout',
  /** A token endpoint request refused: invalid_client, invalid_grant, invalid_scope, ... */
  'token.failure',
  /** Tokens issued, counted per client and written once per interval (never one row per token). */
  'token.issued',
  'token.revoked',
  /** A token exchanged (RFC 8693): the subject, the chain of actors and the target API. */
  'token.exchanged',
  'admin.access_denied',
  /** The decision endpoint refused a request a gateway asked about (counted per client, rule and minute). */
  'gate.denied',
  /** A person signed in to or out of the admin console (src/http/console/). */
  'console.signed_in', 'console.signed_out',
  'registration_token.created', 'registration_token.revoked',
  'registration.created', 'registration.updated', 'registration.deleted', 'registration.failure',
  'key.generated', 'key.rotated', 'key.revoked', 'master_key.rotated',
  'audit.pruned', 'audit.dropped',
  /** Trusted issuers of workload identity (docs/workload-identity.md). */
  'issuer.created', 'issuer.updated', 'issuer.deleted',
  /** Route policies (docs/routes.md). */
  'route.created', 'route.updated', 'route.deleted',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export const ACTOR_TYPES = ['client', 'user', 'operator', 'registration_token', 'anonymous', 'system'] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];

/** Who did it: a client (admin API, token endpoint), a user, an operator at the CLI (OS user). */
export interface Actor { type: ActorType; id?: string | null }

export interface AuditTarget { type: string; id: string }

/**
 * The only keys `details` may hold. Anything else is dropped on record(): a secret, password, code
 * or token cannot reach the table by mistake through a generic object.
 */
export const AUDIT_DETAIL_KEYS = [
  'name', 'identifier', 'grantTypes', 'tokenEndpointAuthMethod', 'roles', 'role', 'api', 'scopes',
  'enabled', 'fields', 'changes', 'keepOldForSeconds', 'oldSecretsExpireAt', 'revokedBefore', 'deletedArtifacts',
  'error', 'errorDescription', 'grantType', 'status', 'reason', 'method', 'path', 'route',
  'count', 'since', 'until', 'resource', 'tokenTypeHint', 'maxUses', 'expiresAt', 'description',
  'registrationToken', 'kid', 'alg', 'deleted', 'before', 'dropped', 'username', 'attempts',
  'firstSeen', 'lastSeen', 'overflow', 'actors',
  'issuer', 'kind', 'jwksSource', 'jwksUri', 'subject', 'claims', 'clients',
  'host', 'methods',
] as const;

export type AuditDetailKey = (typeof AUDIT_DETAIL_KEYS)[number];
export type AuditDetails = Partial<Record<AuditDetailKey, unknown>>;

export interface AuditEventInput {
  type: AuditEventType;
  /**
   * Who did it. Services leave it out: the sink they are given is bound to the caller (auditAs).
   * Left out on an unbound sink, it is the system.
   */
  actor?: Actor;
  target?: AuditTarget | null;
  /** success unless said otherwise */
  outcome?: 'success' | 'failure';
  details?: AuditDetails;
  sourceAddress?: string | null;
  requestId?: string | null;
  /** The client the event concerns when it is neither actor nor target (e.g. a failed login's app). */
  clientId?: string | null;
  userId?: string | null;
}

/**
 * The one audit interface: where every layer reports security events. It never throws and never
 * waits (services/audit.ts AuditLog buffers and writes in batches). Write functions of the
 * services take one, required: an adapter (admin API, CLI, provider hooks) passes the log bound
 * to whoever is acting (auditAs).
 */
export interface AuditSink {
  record(event: AuditEventInput): void;
  /** One token issued to `clientId`: counted in memory, written in periodic batches. */
  countTokenIssued(clientId: string): void;
}

/** Records nothing: for tests and fixtures that set data up, never for a request. */
export const NO_AUDIT: AuditSink = { record() {}, countTokenIssued() {} };

/** Who acts, and from where, as every event recorded through a bound sink says. */
export interface AuditContext {
  actor: Actor;
  /** The app a person acted through (the admin API with a person's token). */
  clientId?: string;
  sourceAddress?: string | null;
  requestId?: string | null;
}

/** `sink` bound to who is acting: every event recorded through it names them. */
export function auditAs(sink: AuditSink, who: AuditContext): AuditSink {
  return {
    record: (event) => sink.record({ ...event, ...who }),
    countTokenIssued: (clientId) => sink.countTokenIssued(clientId),
  };
}

/**
 * Refusals that anyone can cause at will, without credentials: each would otherwise be a row per
 * request. They are counted instead, one row per type, source address, client (the one that
 * exists; else none) and these details, per interval (docs/audit.md). Listed here: the details
 * that tell one kind of refusal from another.
 */
const AGGREGATED: Partial<Record<AuditEventType, readonly AuditDetailKey[]>> = {
  // grantType is one of AUDIT_GRANT_TYPES or `other` (auditGrantType): the caller writes it.
  'token.failure': ['error', 'status', 'route', 'grantType'],
  'registration.failure': ['error', 'status', 'route'],
  'client.network_refused': ['route'],
  'login.failure': ['reason'],
  'admin.access_denied': ['reason', 'status', 'method', 'route'],
  'gate.denied': ['route', 'status', 'error', 'reason'],
};

/**
 * Details of a counted refusal that the caller chooses freely (a username typed on the login
 * page): never part of the key, which would let anyone make a row per value; each row keeps the
 * first few distinct values as examples instead.
 */
const SAMPLED: Partial<Record<AuditEventType, readonly AuditDetailKey[]>> = {
  'login.failure': ['username'],
};

/** The sampled details of a counted event (see SAMPLED). */
export function sampledDetails(event: AuditEventInput): readonly AuditDetailKey[] {
  return SAMPLED[event.type] ?? [];
}

/** The grant types Postern serves; a refusal names any other as `other`. */
export const AUDIT_GRANT_TYPES: readonly string[] = ['authorization_code', 'client_credentials', 'refresh_token'];

/** A request's grant_type as the audit log keeps it: a served one, `other`, or none. */
export function auditGrantType(value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'string' && AUDIT_GRANT_TYPES.includes(value) ? value : 'other';
}

/**
 * The details that key the count of `event`, or undefined when it is recorded on its own row.
 * admin.access_denied is counted only without a valid token (401); a 403 names an authenticated
 * client and stays a row of its own, as every other event does.
 */
export function aggregationKeys(event: AuditEventInput): readonly AuditDetailKey[] | undefined {
  if (event.type === 'admin.access_denied' && event.actor?.type !== 'anonymous') return undefined;
  return AGGREGATED[event.type];
}
