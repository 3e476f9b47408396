-- The agent panel: users (argon2 hashes only), server-side sessions, failed sign-ins.

CREATE TABLE web_users (
    username      text PRIMARY KEY,
    display_name  text NOT NULL,
    role          text NOT NULL CHECK (role IN ('agent', 'expert', 'supervisor', 'admin')),
    agent_id      text REFERENCES agents (id),
    password_hash text NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((role IN ('agent', 'expert')) = (agent_id IS NOT NULL))
);

-- The cookie holds a random token; only its SHA-256 is stored, so a copy of this table
-- does not let anyone in.
CREATE TABLE web_sessions (
    token_hash   bytea PRIMARY KEY,
    username     text NOT NULL REFERENCES web_users (username) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    remote       text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX web_sessions_by_user ON web_sessions (username);

-- Failed sign-ins per username (as typed) and address, for throttling. Rows older than the
-- window are pruned as new ones come in.
CREATE TABLE web_login_failures (
    id       bigserial PRIMARY KEY,
    username text NOT NULL,
    remote   text NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX web_login_failures_by_key ON web_login_failures (username, remote, at);
CREATE INDEX web_login_failures_by_time ON web_login_failures (at);
