-- Workspaces (git checkouts sessions work in) and the pull requests their work became.

CREATE TABLE workspaces (
    id AUTO_ID,
    objective_id BIGINT NOT NULL REFERENCES objectives (id),
    created_by BIGINT REFERENCES sessions (id),
    repository TEXT NOT NULL,
    target TEXT NOT NULL,
    path TEXT NOT NULL,
    branch TEXT,
    base_ref TEXT NOT NULL,
    base_sha TEXT,
    status TEXT NOT NULL,
    error TEXT,
    holder BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    archived_at BIGINT
);
CREATE INDEX workspaces_objective ON workspaces (objective_id);
CREATE INDEX workspaces_branch ON workspaces (repository, branch);

ALTER TABLE sessions ADD COLUMN workspace_id BIGINT REFERENCES workspaces (id);

CREATE TABLE pull_requests (
    id AUTO_ID,
    objective_id BIGINT NOT NULL REFERENCES objectives (id),
    workspace_id BIGINT REFERENCES workspaces (id),
    session_id BIGINT REFERENCES sessions (id),
    repository TEXT NOT NULL,
    number BIGINT NOT NULL,
    branch TEXT NOT NULL,
    base_ref TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    state TEXT NOT NULL,
    checks TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    closes_issue BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (repository, number)
);
CREATE INDEX pull_requests_objective ON pull_requests (objective_id);
CREATE INDEX pull_requests_branch ON pull_requests (repository, branch);
