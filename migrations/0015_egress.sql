-- Destinations the egress proxy refused a session's agent, with how often and when: the
-- status comment lists them, so a human can allow a legitimate one.
CREATE TABLE blocked_egress (
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    host TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, host)
);
