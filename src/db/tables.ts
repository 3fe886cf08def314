// Table types for kysely, matching migrations/. Timestamps come back as Date from both pg and PGlite.
import type { ColumnType, Generated, Kysely } from 'kysely';

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type UpdatedAt = ColumnType<Date, Date | string | undefined, Date | string>;
/** jsonb: objects come back parsed; we write them as JSON text so both drivers behave alike. */
type Json<T> = ColumnType<T, string, string>;

export interface ClientsTable {
  client_id: string;
  name: string;
  metadata: Json<Record<string, unknown>>;
  enabled: Generated<boolean>;
  /** Tokens of this client issued before this moment are inactive (migration 0003). */
  tokens_revoked_before: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** CIDR strings the client may authenticate from; empty: anywhere (migration 0007). */
  allowed_networks: ColumnType<string[], string | undefined, string>;
  /** The registration token a self-registered client used (migration 0008); null: an operator's. */
  registered_by: ColumnType<string | null, string | null | undefined, string | null>;
  /** It may exchange tokens without being named in `act` (migration 0015). */
  may_impersonate: Generated<boolean>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ClientSecretsTable {
  id: string;
  client_id: string;
  secret_hash: string;
  created_at: CreatedAt;
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface ApisTable {
  id: string;
  identifier: string;
  name: string;
  token_format: Generated<'jwt' | 'opaque'>;
  signing_alg: Generated<string>;
  access_token_ttl: Generated<number>;
  introspection_client_id: string | null;
  system: Generated<boolean>;
  /** Tokens for this API must be DPoP-bound (migration 0007). */
  require_dpop: Generated<boolean>;
  require_mtls: Generated<boolean>;
  /** The client that serves this API: the only one that may exchange its tokens (migration 0015). */
  owner_client_id: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ApiScopesTable {
  api_id: string;
  name: string;
  description: string | null;
}

export interface RolesTable {
  id: string;
  name: string;
  description: string | null;
  created_at: CreatedAt;
}

export interface RoleScopesTable {
  role_id: string;
  api_id: string;
  scope: string;
}

export interface ClientRolesTable {
  client_id: string;
  role_id: string;
}

/** What a client may ask for on others' behalf by token exchange, per API (migration 0015). */
export interface ClientExchangeScopesTable {
  client_id: string;
  api_id: string;
  scope: string;
}

export interface OidcPayloadsTable {
  model: string;
  id: string;
  payload: Json<Record<string, unknown>>;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  /** The person an artifact belongs to (migration 0005). */
  account_id: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: Date | null;
  consumed_at: Date | null;
  /**
   * Written in the hashed form (migration 0011); false for rows of an older version, which are
   * converted at start. Every writer sets it: the default is the older versions'.
   */
  hashed: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface RevokedTokensTable {
  jti: string;
  client_id: string;
  expires_at: Date;
  revoked_at: CreatedAt;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  /** Plaintext private JWK of a key stored before migration 0004, until a start encrypts it. */
  private_jwk: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  /** The private JWK sealed with the master key (src/domain/key-encryption.ts). */
  encrypted_private_jwk: string | null;
  public_jwk: Json<Record<string, unknown>>;
  /** Published from created_at; signs from activates_at; stops at retires_at; unpublished at remove_after. */
  created_at: ColumnType<Date, Date | undefined, never>;
  activates_at: ColumnType<Date, Date | undefined, Date>;
  retires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  remove_after: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface ServerSecretsTable {
  name: string;
  /** Plaintext value stored before migration 0004, until a start encrypts it. */
  value: string | null;
  /** The value sealed with the master key (src/domain/key-encryption.ts). */
  encrypted_value: string | null;
  created_at: CreatedAt;
}

export interface ServerProcessesTable {
  id: string;
  seen_marker: ColumnType<string, string | number, string | number>;
  heartbeat_at: ColumnType<Date, Date | string | undefined, Date | string>;
  started_at: CreatedAt;
}

export interface UsersTable {
  id: string;
  username: string;
  email: string | null;
  email_verified: Generated<boolean>;
  name: string | null;
  password_hash: string;
  enabled: Generated<boolean>;
  password_changed_at: ColumnType<Date, Date | string | undefined, Date | string>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface UserRolesTable {
  user_id: string;
  role_id: string;
}

export interface LoginFailuresTable {
  key: string;
  failures: number;
  first_at: Date;
  last_at: Date;
  locked_until: Date | null;
}

export interface SchemaMigrationsTable {
  name: string;
  applied_at: CreatedAt;
}

export interface AuditEventsTable {
  id: ColumnType<string, never, never>;
  occurred_at: ColumnType<Date, Date | string | undefined, never>;
  type: string;
  actor_type: string;
  actor_id: string | null;
  target_type: string | null;
  target_id: string | null;
  client_id: string | null;
  user_id: string | null;
  outcome: 'success' | 'failure';
  source_address: string | null;
  request_id: string | null;
  details: Json<Record<string, unknown>>;
}

export interface RegistrationTokensTable {
  id: string;
  token_hash: string;
  description: string | null;
  max_uses: number;
  uses: Generated<number>;
  expires_at: Date;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  created_at: CreatedAt;
}

export interface RegistrationTokenRolesTable {
  token_id: string;
  role_id: string;
}

export interface TrustedIssuersTable {
  id: string;
  name: string;
  issuer: string;
  kind: 'kubernetes' | 'spiffe' | 'oidc';
  jwks_source: 'discovery' | 'jwks_uri' | 'static';
  jwks_uri: ColumnType<string | null, string | null | undefined, string | null>;
  jwks: ColumnType<{ keys: Record<string, unknown>[] } | null, string | null | undefined, string | null>;
  enabled: Generated<boolean>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** Route policies (migration 0013); the lists are jsonb arrays written as JSON text. */
export interface RouteRulesTable {
  id: string;
  api_id: string;
  host: string | null;
  methods: Json<string[]>;
  path: string;
  public: boolean;
  scopes_all: Json<string[]>;
  scopes_any: Json<string[]>;
  roles: Json<string[]>;
  clients: Json<string[]>;
  sender_constrained: 'dpop' | 'mtls' | 'any' | null;
  rate_limit_per_minute: number | null;
  cache_seconds: number | null;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

export interface ClientFederationsTable {
  client_id: string;
  issuer_id: string;
  subject: string;
  claims: Json<Record<string, string>>;
}

export interface UsedAssertionsTable {
  id: string;
  expires_at: Date;
}

/** A signed-in person's console session (migration 0016), found by the keyed hash of its id. */
export interface ConsoleSessionsTable {
  id_hash: string;
  user_id: string;
  csrf_secret: string;
  created_at: CreatedAt;
  last_seen_at: ColumnType<Date, Date | undefined, Date>;
  expires_at: Date;
}

export interface Tables {
  clients: ClientsTable;
  client_secrets: ClientSecretsTable;
  apis: ApisTable;
  api_scopes: ApiScopesTable;
  roles: RolesTable;
  role_scopes: RoleScopesTable;
  client_roles: ClientRolesTable;
  client_exchange_scopes: ClientExchangeScopesTable;
  oidc_payloads: OidcPayloadsTable;
  revoked_tokens: RevokedTokensTable;
  signing_keys: SigningKeysTable;
  server_secrets: ServerSecretsTable;
  schema_migrations: SchemaMigrationsTable;
  server_processes: ServerProcessesTable;
  users: UsersTable;
  user_roles: UserRolesTable;
  login_failures: LoginFailuresTable;
  audit_events: AuditEventsTable;
  registration_tokens: RegistrationTokensTable;
  registration_token_roles: RegistrationTokenRolesTable;
  trusted_issuers: TrustedIssuersTable;
  client_federations: ClientFederationsTable;
  used_assertions: UsedAssertionsTable;
  route_rules: RouteRulesTable;
  console_sessions: ConsoleSessionsTable;
}

/**
 * What every store, service and adapter function takes: a connection pool or a transaction
 * (kysely's Transaction is a Kysely, so one type covers both).
 */
export type Db = Kysely<Tables>;
