-- After-call work: the handling agent's disposition (wrap-up) code and notes on the interaction.
-- Each save also adds an interaction event of kind 'disposition', so edits keep their history.

ALTER TABLE interactions
    ADD COLUMN disposition    text,
    ADD COLUMN notes          text NOT NULL DEFAULT '',
    ADD COLUMN disposition_by text REFERENCES agents (id),
    ADD COLUMN disposition_at timestamptz;
