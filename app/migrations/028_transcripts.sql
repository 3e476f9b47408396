-- Transcripts of recorded calls (app/recording/transcripts.py): a job per recording, queued when
-- its row is written and kept here so it survives a restart; the lines heard on each side, with
-- a 'simple' text-search vector for the QA desk's "words in the transcript" filter.

CREATE TABLE transcript_jobs (
    recording_id uuid PRIMARY KEY REFERENCES recordings (id),
    state        text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    queued_at    timestamptz NOT NULL DEFAULT now(),
    not_before   timestamptz NOT NULL DEFAULT now(),  -- a retry waits until then
    attempts     integer NOT NULL DEFAULT 0,
    started_at   timestamptz,                         -- the running attempt's lease: renewed while it works
    finished_at  timestamptz,
    error        text NOT NULL DEFAULT '',
    engine       text,
    audio_s      real,                                -- seconds of audio per side
    cpu_s        real                                 -- the worker's CPU time for both sides
);
CREATE INDEX transcript_jobs_waiting ON transcript_jobs (queued_at) WHERE state IN ('queued', 'running');

CREATE TABLE transcript_lines (
    id           bigserial PRIMARY KEY,
    recording_id uuid NOT NULL REFERENCES recordings (id),
    side         text NOT NULL CHECK (side IN ('caller', 'center')),
    start_s      real NOT NULL,
    end_s        real NOT NULL,
    text         text NOT NULL,
    words        tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
);
CREATE INDEX transcript_lines_recording ON transcript_lines (recording_id, start_s);
CREATE INDEX transcript_lines_words ON transcript_lines USING gin (words);
