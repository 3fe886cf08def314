-- The admin API (/admin/v1) is guarded by Postern's own access tokens for the built-in API
-- `urn:postern`: `admin:read` for reading, `admin:write` for every change.
INSERT INTO api_scopes (api_id, name, description)
VALUES ('api_postern', 'admin:read', 'Read Postern''s configuration through the admin API'),
       ('api_postern', 'admin:write', 'Change Postern''s configuration through the admin API')
ON CONFLICT (api_id, name) DO NOTHING;

-- Revoking every token of a client: JWT access tokens are not stored, so the client records a
-- cut-off instead. A token of this client issued (iat) before it is inactive everywhere.
ALTER TABLE clients ADD COLUMN tokens_revoked_before timestamptz;
