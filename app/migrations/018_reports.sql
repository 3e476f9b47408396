-- The agent report and staffing read every agent's state changes over a period: by time.
CREATE INDEX agent_state_events_at ON agent_state_events (at);
-- The IVR report finds the calls that entered a flow in a period.
CREATE INDEX interaction_events_flow_at ON interaction_events (at) WHERE kind = 'flow';

-- What the reports keep once a day (UTC) is over and none of its calls is still open
-- (app/adapters/report_store.py): each call's facts (one narrow row instead of its events) and
-- each agent's time per quarter hour, state and reason. Derived from the events, never edited
-- by hand: deleting a day's rows and its report_days_kept row makes it be read afresh.
CREATE TABLE report_calls (
    interaction_id uuid PRIMARY KEY,
    queue          text NOT NULL,
    tier           text NOT NULL,
    queued_at      timestamptz NOT NULL,
    answered_at    timestamptz,
    ended_at       timestamptz,
    outcome        text
);
CREATE INDEX report_calls_queued_at ON report_calls (queued_at);

CREATE TABLE report_agent_time (
    agent_id text NOT NULL,
    quarter  timestamptz NOT NULL,
    state    text NOT NULL,
    reason   text,
    seconds  double precision NOT NULL,
    calls    integer NOT NULL
);
CREATE INDEX report_agent_time_quarter ON report_agent_time (quarter);

CREATE TABLE report_days_kept (
    day     date PRIMARY KEY,   -- UTC
    kept_at timestamptz NOT NULL DEFAULT now()
);
