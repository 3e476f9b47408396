-- The expert directory changed over the API: outside experts added (the entry as given) and
-- experts taken out (an added one or one of the configuration's). Applied over the
-- configuration at every start, before expert_changes.
CREATE TABLE expert_roster (
    expert_id  text PRIMARY KEY,
    entry      jsonb,                        -- an added expert; NULL for a configured one removed
    removed    boolean NOT NULL DEFAULT false,
    changed_by text NOT NULL,
    changed_at timestamptz NOT NULL
);
