-- The agent report and staffing read every agent's state changes over a period: by time.
CREATE INDEX agent_state_events_at ON agent_state_events (at);
-- The IVR report finds the calls that entered a flow in a period.
CREATE INDEX interaction_events_flow_at ON interaction_events (at) WHERE kind = 'flow';
