-- People who sign in through the browser (docs/users.md). Passwords are argon2id hashes
-- (src/passwords.ts); usernames and emails are unique regardless of case.
CREATE TABLE users (
  id                       text PRIMARY KEY,
  username                 text NOT NULL,
  email                    text,
  email_verified           boolean NOT NULL DEFAULT false,
  name                     text,
  password_hash            text NOT NULL,
  enabled                  boolean NOT NULL DEFAULT true,
  password_changed_at      timestamptz NOT NULL DEFAULT now(),
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower ON users (lower(email)) WHERE email IS NOT NULL;

-- Roles govern people as they govern clients.
CREATE TABLE user_roles (
  user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role_id  text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_id ON user_roles (role_id);

-- Sessions and grants are found by the person they belong to (revoke-sessions, deleting a user).
ALTER TABLE oidc_payloads ADD COLUMN account_id text;
CREATE INDEX oidc_payloads_account_id ON oidc_payloads (account_id) WHERE account_id IS NOT NULL;

-- JWT access tokens are not stored; those issued to people carry a digest of their grant id
-- (`gid`). Revoking a grant (code replay, refresh-token reuse, revoke-sessions) records
-- `grant:<digest>` in revoked_tokens, which introspection already consults.

-- Failed sign-ins per username and per source address, shared by every process: they slow down,
-- then lock out for a while (src/services/login-protection.ts). Keys are digests, never the
-- username itself.
CREATE TABLE login_failures (
  key           text PRIMARY KEY,
  failures      integer NOT NULL,
  first_at      timestamptz NOT NULL,
  last_at       timestamptz NOT NULL,
  locked_until  timestamptz
);
