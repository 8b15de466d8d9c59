-- The supervisor: when it last acted on an objective (its cooldown survives restarts and is
-- shared by instances), the session id its manager budget counts from (moved on when a human
-- says go on), and whether it has escalated; and the objective each audit entry is about.

ALTER TABLE objectives ADD COLUMN supervised_at BIGINT;
ALTER TABLE objectives ADD COLUMN supervisor_base BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objectives ADD COLUMN escalated_at BIGINT;
ALTER TABLE audit_log ADD COLUMN objective_id BIGINT;
CREATE INDEX audit_log_objective ON audit_log (objective_id);
CREATE INDEX sessions_objective_role ON sessions (objective_id, role, status);
