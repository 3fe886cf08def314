-- Workload identity (docs/workload-identity.md): issuers whose tokens Postern trusts (a Kubernetes
-- cluster, a SPIFFE trust domain, GitHub Actions), the clients bound to one of their subjects, and
-- the jti of each assertion already used, stored as a keyed hash until the assertion expires.
CREATE TABLE trusted_issuers (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  -- The `iss` its tokens carry (or, for SPIFFE without `iss`, spiffe://<trust domain>).
  issuer text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('kubernetes', 'spiffe', 'oidc')),
  -- Where its keys come from: discovery (issuer + /.well-known/openid-configuration), a JWKS URL,
  -- or a JWK Set given once (jwks).
  jwks_source text NOT NULL CHECK (jwks_source IN ('discovery', 'jwks_uri', 'static')),
  jwks_uri text,
  jwks jsonb,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A client that authenticates with its platform's token: one issuer, one subject, and claims
-- that must hold exactly. One client per (issuer, subject), so an assertion names one client.
CREATE TABLE client_federations (
  client_id text PRIMARY KEY REFERENCES clients (client_id) ON DELETE CASCADE,
  issuer_id text NOT NULL REFERENCES trusted_issuers (id) ON DELETE CASCADE,
  subject text NOT NULL,
  claims jsonb NOT NULL DEFAULT '{}'::jsonb,
  UNIQUE (issuer_id, subject)
);

-- RFC 7523 §3 item 7: a jti is accepted once. Only assertions whose signature verified are
-- recorded, under HMAC of issuer and jti, and forgotten once the assertion has expired.
CREATE TABLE used_assertions (
  id text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX used_assertions_expires_at ON used_assertions (expires_at);
