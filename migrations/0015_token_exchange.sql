-- Token exchange (RFC 8693, docs/token-exchange.md). An API may have an owning client: the
-- service behind it, the only client that may exchange tokens issued for it. A client may
-- exchange such tokens for tokens of other APIs, for the scopes listed here at most, and, when
-- may_impersonate is set, without an `act` claim naming it.
ALTER TABLE apis ADD COLUMN owner_client_id text REFERENCES clients (client_id) ON DELETE SET NULL;
ALTER TABLE clients ADD COLUMN may_impersonate boolean NOT NULL DEFAULT false;

CREATE TABLE client_exchange_scopes (
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  api_id text NOT NULL,
  scope text NOT NULL,
  PRIMARY KEY (client_id, api_id, scope),
  FOREIGN KEY (api_id, scope) REFERENCES api_scopes (api_id, name) ON DELETE CASCADE
);
CREATE INDEX client_exchange_scopes_api ON client_exchange_scopes (api_id);
