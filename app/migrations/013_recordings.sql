-- Call recording and the QA desk: one row per recorded interaction, written when its file is
-- closed; who listened to or downloaded what (and who was refused); the QA role.

CREATE TABLE recordings (
    id             uuid PRIMARY KEY,
    interaction_id uuid NOT NULL REFERENCES interactions (id),
    part           text NOT NULL DEFAULT 'conversation' CHECK (part IN ('conversation', 'ivr')),
    direction      text NOT NULL,
    queue          text,
    campaign       text,
    ani            text NOT NULL,
    agents         text[] NOT NULL DEFAULT '{}',   -- every agent who talked on the call
    started_at     timestamptz NOT NULL,            -- the first agent's answer
    duration_ms    integer NOT NULL,
    channels       smallint NOT NULL,               -- 2: the caller left, the center's side right
    sample_rate    integer NOT NULL,
    size_bytes     bigint NOT NULL,
    sha256         text NOT NULL,                   -- of the stored file, as written
    path           text NOT NULL,                   -- relative to recording.directory
    spans          jsonb NOT NULL DEFAULT '[]',     -- [{"kind", "start_s", "end_s"}]: pause, hold, silence, overtalk
    levels         jsonb NOT NULL DEFAULT '{}',     -- the waveform: {"frame_s", "caller": [rms], "center": [rms]}
    rule           text NOT NULL,                   -- which rule decided: "queue:general", ...
    retention_days integer NOT NULL,                -- 0: kept for ever
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,                     -- the retention job removed the file
    deleted_reason text
);
CREATE INDEX recordings_started ON recordings (started_at DESC) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX recordings_interaction ON recordings (interaction_id, part);
CREATE INDEX recordings_agents ON recordings USING gin (agents);
CREATE INDEX recordings_ani ON recordings (ani, started_at DESC);

-- Every listen and download, and every refused attempt; kept when the recording is deleted.
CREATE TABLE recording_access (
    id           bigserial PRIMARY KEY,
    recording_id uuid NOT NULL,
    username     text NOT NULL,
    role         text NOT NULL,
    action       text NOT NULL CHECK (action IN ('listen', 'download')),
    allowed      boolean NOT NULL,
    remote       text NOT NULL DEFAULT '',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_access_by_recording ON recording_access (recording_id, at);

-- QA evaluations: a scored form per evaluator and call, frozen once submitted (a trigger refuses
-- changes to what was scored); amendments say who changed what and why; the agent acknowledges
-- or disputes.
CREATE TABLE evaluations (
    id              uuid PRIMARY KEY,
    recording_id    uuid NOT NULL REFERENCES recordings (id),
    interaction_id  uuid NOT NULL,
    agent_id        text,                        -- the agent evaluated
    form_name       text NOT NULL,
    form            jsonb NOT NULL,              -- the form as it was when scored
    evaluator       text NOT NULL,
    answers         jsonb NOT NULL,
    comment         text NOT NULL DEFAULT '',
    score           numeric(4,1) NOT NULL,
    failed_critical text[] NOT NULL DEFAULT '{}',
    submitted_at    timestamptz NOT NULL,
    acknowledged_at timestamptz,
    disputed        boolean,
    agent_comment   text NOT NULL DEFAULT ''
);
CREATE INDEX evaluations_by_recording ON evaluations (recording_id, submitted_at);
CREATE INDEX evaluations_by_agent ON evaluations (agent_id, submitted_at DESC);

CREATE FUNCTION evaluations_frozen() RETURNS trigger AS $$
BEGIN
    IF (NEW.recording_id, NEW.agent_id, NEW.form, NEW.evaluator, NEW.answers, NEW.comment, NEW.score,
        NEW.failed_critical, NEW.submitted_at)
       IS DISTINCT FROM
       (OLD.recording_id, OLD.agent_id, OLD.form, OLD.evaluator, OLD.answers, OLD.comment, OLD.score,
        OLD.failed_critical, OLD.submitted_at) THEN
        RAISE EXCEPTION 'an evaluation is frozen once submitted: add an amendment instead';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER evaluations_frozen BEFORE UPDATE ON evaluations
    FOR EACH ROW EXECUTE FUNCTION evaluations_frozen();

CREATE TABLE evaluation_amendments (
    id              bigserial PRIMARY KEY,
    evaluation_id   uuid NOT NULL REFERENCES evaluations (id),
    by_user         text NOT NULL,
    why             text NOT NULL,
    answers         jsonb NOT NULL,
    score           numeric(4,1) NOT NULL,
    failed_critical text[] NOT NULL DEFAULT '{}',
    at              timestamptz NOT NULL
);

ALTER TABLE web_users DROP CONSTRAINT IF EXISTS web_users_role_check;
ALTER TABLE web_users ADD CONSTRAINT web_users_role_check
    CHECK (role IN ('agent', 'expert', 'supervisor', 'admin', 'qa'));
