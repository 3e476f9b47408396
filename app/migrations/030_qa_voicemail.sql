-- The QA desk plays voicemail too: a listen to or download of a message is audited in the same
-- log as a recording's, with `kind` saying which (`recording_id` then holds the voicemail's id).
ALTER TABLE recording_access ADD COLUMN kind text NOT NULL DEFAULT 'recording'
    CHECK (kind IN ('recording', 'voicemail'));
-- The desk links a message to its call's recordings by the interaction.
CREATE INDEX IF NOT EXISTS voicemails_interaction ON voicemails (interaction_id);
-- The QA report reads evaluations by when they were submitted; the desk's search and score
-- filter look up each recording's evaluations at their latest amendment (benchmarks/qa_report.py).
CREATE INDEX IF NOT EXISTS evaluations_submitted ON evaluations (submitted_at);
CREATE INDEX IF NOT EXISTS evaluation_amendments_latest ON evaluation_amendments (evaluation_id, id DESC);
