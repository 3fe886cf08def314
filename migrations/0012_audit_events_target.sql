-- Events are found by the client they act on (`postern audit tail --client`), also when client_id
-- names the app a person acted through on the admin API rather than the client they changed.
CREATE INDEX audit_events_target_id ON audit_events (target_id, id) WHERE target_id IS NOT NULL;
