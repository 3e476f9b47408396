-- Outbound campaigns: the leads of each campaign (imported from CSV), the do-not-call list,
-- and every call the dialer places (for the abandon-rate gauge and reports).

CREATE TABLE campaign_leads (
    id              bigserial PRIMARY KEY,
    campaign        text NOT NULL,
    phone           text NOT NULL,
    name            text NOT NULL DEFAULT '',
    timezone        text,                 -- the customer's; NULL: the campaign's
    attributes      jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'dialing', 'done', 'exhausted', 'invalid')),
    attempts        integer NOT NULL DEFAULT 0,
    results         jsonb NOT NULL DEFAULT '{}',   -- result -> count
    next_attempt_at timestamptz,
    locked_until    timestamptz,
    last_result     text,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign, phone)
);
CREATE INDEX campaign_leads_due ON campaign_leads (campaign, next_attempt_at) WHERE status = 'pending';

CREATE TABLE dnc_numbers (
    phone    text PRIMARY KEY,
    source   text NOT NULL DEFAULT '',
    added_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dial_attempts (
    id                 uuid PRIMARY KEY,
    campaign           text NOT NULL,
    lead_id            bigint REFERENCES campaign_leads (id),
    phone              text NOT NULL,
    trunk              text NOT NULL,
    started_at         timestamptz NOT NULL,
    answered_at        timestamptz,             -- a person or a machine picked up
    ended_at           timestamptz,
    result             text,
    amd_status         text,
    live_answer        boolean NOT NULL DEFAULT false,   -- the abandon rate's denominator
    abandoned          boolean NOT NULL DEFAULT false,
    message_started_at timestamptz,             -- the identifying message, when no agent was free
    agent_id           text REFERENCES agents (id),
    interaction_id     uuid REFERENCES interactions (id)
);
CREATE INDEX dial_attempts_gauge ON dial_attempts (campaign, started_at) WHERE live_answer;
