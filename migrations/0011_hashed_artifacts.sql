-- Bearer artifacts stored under a keyed hash of their value (docs/keys.md#artifact-key): the id of
-- a token, code, session or interaction is HMAC-SHA-256(artifact key, value), and values the
-- provider reads back are sealed in the payload. The artifact key is a server secret sealed under
-- the master key, so this migration cannot hash (SQL has no key): rows written before it keep
-- `hashed = false`, and servers and the CLI convert them in place when they start, in one
-- transaction under a lock. New rows are written with `hashed = true`.
ALTER TABLE oidc_payloads ADD COLUMN hashed boolean NOT NULL DEFAULT false;
-- Finding what is left to convert costs nothing once nothing is.
CREATE INDEX oidc_payloads_unhashed ON oidc_payloads (model) WHERE NOT hashed;
