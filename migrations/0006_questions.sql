-- Questions on the issue: the comment that asks, the comment that answered, whether the
-- question's comment shows its end; which pending message carries an answer; and plan approval.

ALTER TABLE questions ADD COLUMN comment_id BIGINT;
ALTER TABLE questions ADD COLUMN answer_comment_id BIGINT;
ALTER TABLE questions ADD COLUMN comment_final BIGINT NOT NULL DEFAULT 0;
CREATE INDEX questions_answer_comment ON questions (answer_comment_id);
ALTER TABLE session_messages ADD COLUMN question_id BIGINT;
ALTER TABLE objectives ADD COLUMN plan_approved_at BIGINT;

-- Comments foreman has acted on (a command, an answer, news for the manager): a comment
-- delivered twice is acted on once.
CREATE TABLE handled_comments (
    comment_id BIGINT PRIMARY KEY,
    handled_at BIGINT NOT NULL
);
