-- The call runtime: what a restarted app needs to take every call and agent up as they were.

-- What the IVR collected and the skills the flow asked for travel with the call (and survive a
-- restart); `legs` is where the call stands on the PBX (its kind, legs, bridge, hold, consult).
ALTER TABLE interactions
    ADD COLUMN collected jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN skills    jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN legs      jsonb NOT NULL DEFAULT '{}';

-- An agent's state as it stands, beside its history in agent_state_events: the interaction they
-- hold, when their wrap-up ends and when they logged in (occupancy), for a restart to restore.
ALTER TABLE agents
    ADD COLUMN interaction_id uuid,
    ADD COLUMN wrap_up_until  timestamptz,
    ADD COLUMN logged_in_at   timestamptz;
