-- People signed in to the web view: the session cookie's hash, who they are on GitHub, their
-- user token (to check what they may read), the CSRF token their forms carry, and when the
-- session ends.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    user_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
