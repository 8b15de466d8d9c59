-- Agent runtime: objectives (the work for one issue), sessions (agent conversations), the
-- messages waiting for a session's next turn, bounded transcripts, questions for humans, and
-- the outbox of effects on GitHub.

CREATE TABLE objectives (
    id AUTO_ID,
    installation_id BIGINT,
    repository_id BIGINT,
    repository TEXT NOT NULL,
    issue_number BIGINT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    author_permission TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    manager_session_id BIGINT,
    summary TEXT,
    budget_sessions BIGINT NOT NULL,
    budget_turns BIGINT NOT NULL,
    budget_wall_ms BIGINT NOT NULL,
    budget_cost_micros BIGINT,
    budget_blocked TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX objectives_status ON objectives (status);
CREATE INDEX objectives_issue ON objectives (repository, issue_number);

CREATE TABLE sessions (
    id AUTO_ID,
    objective_id BIGINT NOT NULL REFERENCES objectives (id),
    role TEXT NOT NULL,
    agent_kind TEXT NOT NULL,
    title TEXT NOT NULL,
    instructions TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    spawned_by BIGINT,
    conversation_id TEXT,
    result TEXT,
    activity TEXT,
    summary TEXT,
    turns BIGINT NOT NULL DEFAULT 0,
    recoveries BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    token_hash TEXT UNIQUE,
    workdir TEXT,
    runner TEXT,
    pid BIGINT,
    heartbeat_at BIGINT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    turn_started_at BIGINT,
    last_activity_at BIGINT,
    ended_at BIGINT
);
CREATE INDEX sessions_objective ON sessions (objective_id);
CREATE INDEX sessions_status ON sessions (status);

CREATE TABLE session_dependencies (
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    depends_on BIGINT NOT NULL REFERENCES sessions (id),
    PRIMARY KEY (session_id, depends_on)
);

CREATE TABLE session_messages (
    id AUTO_ID,
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX session_messages_pending ON session_messages (session_id) WHERE delivered_at IS NULL;

CREATE TABLE transcript_lines (
    id AUTO_ID,
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    at BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX transcript_lines_session ON transcript_lines (session_id, id);

CREATE TABLE questions (
    id AUTO_ID,
    objective_id BIGINT NOT NULL REFERENCES objectives (id),
    session_id BIGINT REFERENCES sessions (id),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    context TEXT,
    status TEXT NOT NULL,
    answer TEXT,
    answered_by TEXT,
    created_at BIGINT NOT NULL,
    answered_at BIGINT
);
CREATE INDEX questions_objective ON questions (objective_id, status);

CREATE TABLE outbox (
    id AUTO_ID,
    objective_id BIGINT REFERENCES objectives (id),
    installation_id BIGINT NOT NULL,
    repository TEXT NOT NULL,
    issue_number BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    marker TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    github_id BIGINT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';
