-- Client authentication beyond shared secrets, and sender-constrained tokens.
-- private_key_jwt clients keep their public keys (`jwks`) or key URL (`jwks_uri`) in
-- clients.metadata, as oidc-provider reads them; they have no rows in client_secrets.

-- Source networks a client may authenticate from (CIDR strings, IPv4 and IPv6). Empty: anywhere.
ALTER TABLE clients ADD COLUMN allowed_networks jsonb NOT NULL DEFAULT '[]'
  CHECK (jsonb_typeof(allowed_networks) = 'array');

-- An API whose tokens must be bound to a DPoP key (RFC 9449): token requests for it without a
-- DPoP proof are refused.
ALTER TABLE apis ADD COLUMN require_dpop boolean NOT NULL DEFAULT false;
