-- Pull requests drive objectives: what GitHub says of mergeability, the manager's decision
-- about one closed without merge, which head the checks state is about and the failing
-- checks; follow-up sessions tied to a pull request (CI, review, conflict), one per key; an
-- objective whose manager said done while pull requests were still open; and GitHub items
-- (reviews, review comments, notices) foreman has acted on, so a redelivery acts once.

ALTER TABLE pull_requests ADD COLUMN mergeable TEXT;
ALTER TABLE pull_requests ADD COLUMN decision TEXT;
ALTER TABLE pull_requests ADD COLUMN checks_sha TEXT;
ALTER TABLE pull_requests ADD COLUMN checks_detail TEXT;
ALTER TABLE sessions ADD COLUMN pull_request_id BIGINT;
ALTER TABLE sessions ADD COLUMN followup_kind TEXT;
ALTER TABLE sessions ADD COLUMN followup_key TEXT;
CREATE UNIQUE INDEX sessions_followup_key ON sessions (followup_key);
CREATE INDEX sessions_pull_request ON sessions (pull_request_id);
CREATE INDEX pull_requests_state ON pull_requests (state);
ALTER TABLE objectives ADD COLUMN done_requested_at BIGINT;

CREATE TABLE handled_keys (
    key TEXT PRIMARY KEY,
    handled_at BIGINT NOT NULL
);
