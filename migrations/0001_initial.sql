-- Postern schema, first version. Forward-only: never edit a landed migration, add a new file.

-- Clients (OAuth 2.0 clients: services today, web apps later).
-- `metadata` holds the oidc-provider client metadata except the secret, which lives hashed in
-- client_secrets. `name` is the human handle used by the CLI.
CREATE TABLE clients (
  client_id    text PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  metadata     jsonb NOT NULL,
  enabled      boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Several secrets per client so that rotation has an overlap. Only a SHA-256 hash is stored:
-- secrets are 256-bit random values made by the server, so a fast hash is enough (no dictionary
-- to attack) and keeps the token endpoint fast.
CREATE TABLE client_secrets (
  id           text PRIMARY KEY,
  client_id    text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  secret_hash  text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz
);
CREATE INDEX client_secrets_client_id ON client_secrets (client_id);

-- APIs (resource servers, RFC 8707). `identifier` is the resource indicator and the `aud` of
-- the tokens issued for it.
CREATE TABLE apis (
  id                       text PRIMARY KEY,
  identifier               text NOT NULL UNIQUE,
  name                     text NOT NULL UNIQUE,
  token_format             text NOT NULL DEFAULT 'jwt' CHECK (token_format IN ('jwt', 'opaque')),
  signing_alg              text NOT NULL DEFAULT 'ES256',
  access_token_ttl         integer NOT NULL DEFAULT 300 CHECK (access_token_ttl BETWEEN 1 AND 86400),
  introspection_client_id  text REFERENCES clients (client_id) ON DELETE SET NULL,
  system                   boolean NOT NULL DEFAULT false,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_scopes (
  api_id       text NOT NULL REFERENCES apis (id) ON DELETE CASCADE,
  name         text NOT NULL,
  description  text,
  PRIMARY KEY (api_id, name)
);

CREATE TABLE roles (
  id           text PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  description  text,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- A role grants scopes of APIs. Removing a scope from an API removes its grants.
CREATE TABLE role_scopes (
  role_id  text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  api_id   text NOT NULL,
  scope    text NOT NULL,
  PRIMARY KEY (role_id, api_id, scope),
  FOREIGN KEY (api_id, scope) REFERENCES api_scopes (api_id, name) ON DELETE CASCADE
);

CREATE TABLE client_roles (
  client_id  text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  role_id    text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (client_id, role_id)
);
CREATE INDEX client_roles_role_id ON client_roles (role_id);

-- Postern's own API: its scopes are permissions on Postern itself (`introspect`: introspect any
-- token). Grant them through roles like any other scope.
INSERT INTO apis (id, identifier, name, token_format, system)
VALUES ('api_postern', 'urn:postern', 'postern', 'jwt', true);
INSERT INTO api_scopes (api_id, name, description)
VALUES ('api_postern', 'introspect', 'Introspect any token issued by Postern');

-- Every oidc-provider artifact (codes, tokens, sessions, grants, interactions, ...) in one table.
-- grant_id, uid and user_code are real indexed columns for revokeByGrantId, findByUid and
-- findByUserCode; consumed_at makes consume() atomic.
CREATE TABLE oidc_payloads (
  model        text NOT NULL,
  id           text NOT NULL,
  payload      jsonb NOT NULL,
  grant_id     text,
  uid          text,
  user_code    text,
  expires_at   timestamptz,
  consumed_at  timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX oidc_payloads_grant_id ON oidc_payloads (grant_id) WHERE grant_id IS NOT NULL;
CREATE UNIQUE INDEX oidc_payloads_uid ON oidc_payloads (model, uid) WHERE uid IS NOT NULL;
CREATE UNIQUE INDEX oidc_payloads_user_code ON oidc_payloads (model, user_code) WHERE user_code IS NOT NULL;
CREATE INDEX oidc_payloads_expires_at ON oidc_payloads (expires_at) WHERE expires_at IS NOT NULL;

-- JWT access tokens are not stored; revoking one records its jti until it would have expired.
CREATE TABLE revoked_tokens (
  jti         text PRIMARY KEY,
  client_id   text NOT NULL,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);

-- Signing keys (private JWKs). `state` leaves room for rotation: only 'active' keys sign.
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  alg          text NOT NULL,
  private_jwk  jsonb NOT NULL,
  state        text NOT NULL DEFAULT 'active' CHECK (state IN ('next', 'active', 'retiring', 'retired')),
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Other server secrets (cookie signing keys).
CREATE TABLE server_secrets (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
