-- Every server process that caches configuration registers here and records the newest
-- propagation marker it has received. A writer publishes a marker after committing a change and
-- waits until every live process has seen it: Postgres delivers notifications in commit order,
-- so a process that has seen the marker has applied the change.
CREATE SEQUENCE change_markers;

CREATE TABLE server_processes (
  id            text PRIMARY KEY,
  seen_marker   bigint NOT NULL,
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz NOT NULL DEFAULT now()
);
