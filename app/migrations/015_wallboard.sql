-- The wallboard reads the day's events back at start (app/supervision/wallboard.py): by time.
CREATE INDEX interaction_events_at ON interaction_events (at);
