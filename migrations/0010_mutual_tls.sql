-- Mutual TLS (RFC 8705): an API may take only access tokens bound to the client's certificate
-- (cnf.x5t#S256). Clients keep their certificate settings in their metadata.
ALTER TABLE apis ADD COLUMN require_mtls boolean NOT NULL DEFAULT false;
