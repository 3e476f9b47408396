-- Customers, agents, interactions (one per contact) and the journey of each as events.

CREATE TABLE customers (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    phone          text UNIQUE,
    account_number text UNIQUE,
    email          text,
    vip            boolean NOT NULL DEFAULT false,
    notes          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE agents (
    id         text PRIMARY KEY,          -- extension and SIP endpoint name
    name       text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE interactions (
    id                uuid PRIMARY KEY,
    media             text NOT NULL DEFAULT 'voice',
    direction         text NOT NULL DEFAULT 'inbound',
    caller_channel_id text,
    ani               text NOT NULL,
    dnis              text NOT NULL,
    customer_id       bigint REFERENCES customers (id),
    phase             text NOT NULL,
    ivr_digits        text NOT NULL DEFAULT '',
    arrived_at        timestamptz NOT NULL,
    queued_at         timestamptz,
    answered_at       timestamptz,
    ended_at          timestamptz,
    queue_wait_ms     integer,
    agent_id          text REFERENCES agents (id),
    outcome           text,
    CHECK (ended_at IS NULL OR outcome IS NOT NULL)
);
CREATE INDEX interactions_open ON interactions (arrived_at) WHERE ended_at IS NULL;
CREATE INDEX interactions_caller_channel ON interactions (caller_channel_id);
CREATE INDEX interactions_ani ON interactions (ani, arrived_at DESC);
CREATE INDEX interactions_customer ON interactions (customer_id, arrived_at DESC);

CREATE TABLE interaction_events (
    id             bigserial PRIMARY KEY,
    interaction_id uuid NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
    at             timestamptz NOT NULL,
    kind           text NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX interaction_events_by_interaction ON interaction_events (interaction_id, id);
