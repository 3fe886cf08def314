-- The audit log (docs/audit.md) and self-registration of services (docs/registration.md).

-- Security events, append-only. Written in batches by src/services/audit.ts. `details` holds only
-- allow-listed keys: never a secret, password, code or token value.
CREATE TABLE audit_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  occurred_at     timestamptz NOT NULL DEFAULT now(),
  type            text NOT NULL,
  actor_type      text NOT NULL CHECK (actor_type IN ('client', 'user', 'operator', 'registration_token', 'anonymous', 'system')),
  actor_id        text,
  target_type     text,
  target_id       text,
  -- The client and the user the event concerns (as actor or target), for filtering.
  client_id       text,
  user_id         text,
  outcome         text NOT NULL CHECK (outcome IN ('success', 'failure')),
  source_address  text,
  request_id      text,
  details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_type ON audit_events (type, id);
CREATE INDEX audit_events_client_id ON audit_events (client_id, id) WHERE client_id IS NOT NULL;
CREATE INDEX audit_events_user_id ON audit_events (user_id, id) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_actor_id ON audit_events (actor_id, id) WHERE actor_id IS NOT NULL;

-- Append-only, enforced here and not only in the code: no row is ever changed, and rows are
-- deleted only by the retention path, which sets postern.audit_retention for its transaction.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('postern.audit_retention', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Initial access tokens (RFC 7591 §3): a deploy pipeline registers a service with one. Only a
-- SHA-256 hash of the token is kept (256 random bits, as client secrets). `uses` is counted up
-- atomically against `max_uses` when a registration is stored.
CREATE TABLE registration_tokens (
  id          text PRIMARY KEY,
  token_hash  text NOT NULL UNIQUE,
  description text,
  max_uses    integer NOT NULL CHECK (max_uses BETWEEN 1 AND 100000),
  uses        integer NOT NULL DEFAULT 0,
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (uses <= max_uses)
);
CREATE INDEX registration_tokens_expires_at ON registration_tokens (expires_at);

-- The roles a client registered with the token gets: these, no more.
CREATE TABLE registration_token_roles (
  token_id  text NOT NULL REFERENCES registration_tokens (id) ON DELETE CASCADE,
  role_id   text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
  PRIMARY KEY (token_id, role_id)
);

-- Which token registered a client (null: created by an operator). Kept when the token goes.
ALTER TABLE clients ADD COLUMN registered_by text REFERENCES registration_tokens (id) ON DELETE SET NULL;
