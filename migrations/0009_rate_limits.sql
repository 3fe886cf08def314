-- Counters of the request limits, shared by every process on this database (when no Redis is
-- configured). The shape is the one rate-limiter-flexible's Postgres store reads and writes:
-- key = limiter prefix + ':' + client id or address, points consumed, expire in epoch ms.
-- UNLOGGED: the counters are written on every limited request and are worth nothing after a
-- crash (Postgres empties an unlogged table then), so they skip the write-ahead log and its
-- flush; they are not replicated to standbys either, which a counter of the last minute need not.
CREATE UNLOGGED TABLE rate_limits (
  key varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
CREATE INDEX rate_limits_expire ON rate_limits (expire);
