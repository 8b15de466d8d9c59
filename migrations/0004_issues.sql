-- Objectives from issues: the repository config an objective runs with, the label event that
-- started it (so one event starts at most one objective), the objective it follows, and its
-- living status comment. The outbox also carries reactions and comment edits.

ALTER TABLE objectives ADD COLUMN config TEXT;
ALTER TABLE objectives ADD COLUMN trigger_key TEXT;
ALTER TABLE objectives ADD COLUMN previous_objective_id BIGINT;
ALTER TABLE objectives ADD COLUMN status_comment_id BIGINT;
ALTER TABLE objectives ADD COLUMN status_rendered TEXT;
ALTER TABLE objectives ADD COLUMN status_edited_at BIGINT;
ALTER TABLE objectives ADD COLUMN status_final BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX objectives_trigger ON objectives (trigger_key);
CREATE UNIQUE INDEX objectives_one_live_per_issue ON objectives (repository, issue_number)
    WHERE status IN ('active', 'waiting');

-- Reactions on a comment name the comment they are on.
ALTER TABLE outbox ADD COLUMN target_id BIGINT;
