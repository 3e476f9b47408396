-- Routing: customer tiers for service levels, agent states and their history, live skill changes.

ALTER TABLE customers
    ADD COLUMN tier  text NOT NULL DEFAULT 'medium' CHECK (tier IN ('top', 'high', 'medium', 'low')),
    ADD COLUMN value numeric NOT NULL DEFAULT 0;

ALTER TABLE interactions
    ADD COLUMN queue text,
    ADD COLUMN tier  text;

ALTER TABLE agents
    ADD COLUMN state            text NOT NULL DEFAULT 'logged_out',
    ADD COLUMN state_since      timestamptz,
    ADD COLUMN not_ready_reason text;

-- Every agent state change, for reports (time in state, Not Ready by reason).
CREATE TABLE agent_state_events (
    id             bigserial PRIMARY KEY,
    agent_id       text NOT NULL REFERENCES agents (id),
    at             timestamptz NOT NULL,
    from_state     text NOT NULL,
    to_state       text NOT NULL,
    reason         text,
    interaction_id uuid
);
CREATE INDEX agent_state_events_by_agent ON agent_state_events (agent_id, at);

-- Skill changes made live (API). They override the YAML for that agent and skill;
-- level NULL means the skill was removed.
CREATE TABLE agent_skill_overrides (
    agent_id   text NOT NULL REFERENCES agents (id),
    skill      text NOT NULL,
    level      smallint CHECK (level IS NULL OR level BETWEEN 1 AND 10),
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, skill)
);
