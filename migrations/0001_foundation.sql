-- Foundation: the webhook inbox, installations and their repositories, leases, audit trail.
--
-- One schema for SQLite and PostgreSQL. Times are milliseconds since the Unix epoch in BIGINT
-- columns; booleans are avoided in favour of TEXT states. The only construct the backends
-- spell differently is an auto-incrementing primary key, written AUTO_ID here and rendered
-- per backend by the store's migrator.

CREATE TABLE deliveries (
    seq AUTO_ID,
    delivery_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    action TEXT,
    installation_id BIGINT,
    repository_id BIGINT,
    repository TEXT,
    queue_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by TEXT,
    claim_expires_at BIGINT,
    last_error TEXT,
    processed_at BIGINT
);
CREATE INDEX deliveries_pending ON deliveries (queue_key, seq) WHERE status = 'pending';
CREATE INDEX deliveries_received ON deliveries (received_at);

CREATE TABLE installations (
    id BIGINT PRIMARY KEY,
    account TEXT NOT NULL,
    account_type TEXT,
    repository_selection TEXT,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE repositories (
    id BIGINT PRIMARY KEY,
    installation_id BIGINT NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    full_name TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX repositories_installation ON repositories (installation_id);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id AUTO_ID,
    at BIGINT NOT NULL,
    delivery_id TEXT,
    installation_id BIGINT,
    repository_id BIGINT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_delivery ON audit_log (delivery_id);
