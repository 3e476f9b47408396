-- Experts outside the center (app/experts/): a VIP customer's own expert, offered the call first
-- when an agent asks for help (an id of `experts.directory` in the configuration; an id no longer
-- configured is skipped). Offers, accepts, rejects and timeouts are interaction events.
ALTER TABLE customers ADD COLUMN own_expert text;

-- One-time links to an offer's preview, sent to an expert on an outside number (a smartphone
-- shows it while they talk). Only the token's SHA-256 is kept; a link opens once, before it
-- expires, and then never again.
CREATE TABLE expert_links (
    token_hash     bytea PRIMARY KEY,
    interaction_id text NOT NULL,
    expert_id      text NOT NULL,
    preview        jsonb NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    opened_at      timestamptz
);

-- Changes to an expert made over the API (expertise, groups, languages, max_calls), applied over
-- the configuration at every start, as agent_skill_overrides are for agents.
CREATE TABLE expert_changes (
    expert_id  text PRIMARY KEY,
    changes    jsonb NOT NULL,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL
);
