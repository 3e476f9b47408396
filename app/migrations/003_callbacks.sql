-- Callbacks: callers who left the line keeping their place, and web "call me" requests.
-- Each attempt to reach the customer is an outbound interaction (direction 'outbound',
-- ani = the customer's number) linked back here.

CREATE TABLE callbacks (
    id                    uuid PRIMARY KEY,
    phone                 text NOT NULL,
    queue                 text NOT NULL,
    tier                  text NOT NULL DEFAULT 'medium',
    customer_id           bigint REFERENCES customers (id),
    origin_interaction_id uuid REFERENCES interactions (id),
    source                text NOT NULL CHECK (source IN ('ivr', 'web', 'voicemail')),
    place_at              timestamptz NOT NULL,   -- the place in line kept: original arrival
    requested_at          timestamptz NOT NULL,
    status                text NOT NULL CHECK (status IN ('waiting', 'dialing', 'completed', 'failed', 'cancelled')),
    attempts              integer NOT NULL DEFAULT 0,
    not_before            timestamptz,
    last_result           text,
    agent_id              text REFERENCES agents (id),
    data                  jsonb NOT NULL DEFAULT '{}',
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX callbacks_open ON callbacks (place_at) WHERE status IN ('waiting', 'dialing');

ALTER TABLE interactions ADD COLUMN callback_id uuid REFERENCES callbacks (id);
CREATE INDEX interactions_callback ON interactions (callback_id) WHERE callback_id IS NOT NULL;
