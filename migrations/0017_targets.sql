-- Targets: the machine a session's turns run on (NULL until its first turn is placed; every
-- session that took a turn before ran on the foreman host), and one row per target that each
-- claim of a turn's place there locks first, so that instances sharing a database never put
-- more turns on a target than its capacity.
ALTER TABLE sessions ADD COLUMN target TEXT;
UPDATE sessions SET target = 'local' WHERE turns > 0 OR status IN ('starting', 'running');
CREATE TABLE target_claims (
    name TEXT PRIMARY KEY,
    claims BIGINT NOT NULL DEFAULT 0
);
