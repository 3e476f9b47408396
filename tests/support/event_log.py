"""The wallboard's figures computed by SQL from the event log alone, for the tests that hold the
board against it (tests/e2e/test_wallboard.py, tests/e2e/test_wallboard_load.py): each
interaction counted where it first joined a line; answered at its first `connected`; abandoned
when it ended `abandoned` unanswered, short when that was sooner than the threshold (the one
parameter, an interval such as '1 second')."""

WALLBOARD_SQL = """
WITH joined AS (
    SELECT DISTINCT ON (interaction_id) interaction_id, at AS queued_at, data->>'queue' AS queue
    FROM interaction_events WHERE kind = 'queued' ORDER BY interaction_id, id
), answered AS (
    SELECT DISTINCT ON (e.interaction_id) e.interaction_id, e.at
    FROM interaction_events e JOIN joined j USING (interaction_id)
    WHERE e.kind = 'connected' ORDER BY e.interaction_id, e.id
), abandoned AS (
    SELECT e.interaction_id, e.at FROM interaction_events e JOIN joined j USING (interaction_id)
    WHERE e.kind = 'ended' AND e.data->>'outcome' = 'abandoned'
      AND NOT EXISTS (SELECT 1 FROM answered a WHERE a.interaction_id = e.interaction_id)
)
SELECT j.queue, count(*), count(a.interaction_id), count(b.interaction_id),
       count(b.interaction_id) FILTER (WHERE b.at - j.queued_at < %s::interval)
FROM joined j LEFT JOIN answered a USING (interaction_id) LEFT JOIN abandoned b USING (interaction_id)
GROUP BY j.queue
"""
