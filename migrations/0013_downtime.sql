-- Time no foreman instance ran while the objective was live (foreman stopped, or between a
-- lease holder's death and its successor): nothing worked on the objective then, so its
-- time budget does not count it.
ALTER TABLE objectives ADD COLUMN downtime_ms BIGINT NOT NULL DEFAULT 0;
