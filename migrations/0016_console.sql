-- The admin console (/console, docs/console.md): a first-party app people sign in to with
-- authorization code + PKCE, and the sessions it keeps once they have.

-- The console's own app: public (PKCE, no secret), first-party (no consent screen). Its redirect
-- URI depends on where the console is served, so each server writes it at start
-- (services/console-sessions.ts registerConsoleApp).
INSERT INTO clients (client_id, name, metadata)
VALUES ('postern-console-webapp', 'postern-console', '{"client_id":"postern-console-webapp","client_name":"Postern console","grant_types":["authorization_code"],"response_types":["code"],"redirect_uris":[],"token_endpoint_auth_method":"none","first_party":true}')
ON CONFLICT DO NOTHING;

-- The role of administrators: everything on the admin API (and so in the console). bootstrap may
-- have created it already, with these grants.
INSERT INTO roles (id, name, description)
VALUES ('role_postern_admin', 'postern-admin', 'Postern administrators')
ON CONFLICT DO NOTHING;
INSERT INTO role_scopes (role_id, api_id, scope)
SELECT id, 'api_postern', scope FROM roles, (VALUES ('admin:read'), ('admin:write')) AS s (scope)
WHERE name = 'postern-admin'
ON CONFLICT DO NOTHING;

-- A console session exists only once a person has signed in: its row is written after the code
-- was redeemed, never for an anonymous request. The browser holds the session id; the row holds
-- its keyed hash (src/domain/artifact-hashing.ts), so a copy of the table signs no one in.
CREATE TABLE console_sessions (
  id_hash       text PRIMARY KEY,
  user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  csrf_secret   text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
CREATE INDEX console_sessions_user_id ON console_sessions (user_id);
