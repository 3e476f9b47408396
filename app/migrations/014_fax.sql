-- Fax (app/fax/): every fax session, sent or received, with its result. A received fax's pages
-- live under <var_dir>/fax/in/<id>.tif and .pdf; a failed or partial one is kept all the same.
-- A fax to send to a number is a job, tried until it goes; each try is a `faxes` row.

CREATE TABLE fax_jobs (
    id               uuid PRIMARY KEY,
    number           text NOT NULL,
    documents        text[] NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'refused')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    created_by       text NOT NULL DEFAULT ''
);
CREATE INDEX fax_jobs_due ON fax_jobs (next_attempt_at) WHERE status = 'queued';
CREATE INDEX fax_jobs_number ON fax_jobs (number, created_at);

CREATE TABLE faxes (
    id              uuid PRIMARY KEY,
    interaction_id  uuid REFERENCES interactions (id),
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    -- in: received on a fax number; on_call: sent back on the caller's own call; job: a try of a job.
    mode            text NOT NULL CHECK (mode IN ('in', 'on_call', 'job')),
    job_id          uuid REFERENCES fax_jobs (id),
    number          text NOT NULL,          -- the other side's number (sender's caller ID, or ours to them)
    station_id      text NOT NULL DEFAULT '',  -- the other machine's station id (CSI/TSI)
    documents       text[] NOT NULL DEFAULT '{}',  -- catalogue codes sent
    pages_expected  integer,                -- what we meant to send (cover page included)
    pages           integer NOT NULL DEFAULT 0,  -- pages that went (or came)
    rate            integer,                -- bits per second
    ecm             boolean,
    status          text NOT NULL CHECK (status IN ('sending', 'receiving', 'ok', 'partial', 'failed')),
    error           text NOT NULL DEFAULT '',
    tiff_path       text,
    pdf_path        text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    emailed_at      timestamptz,
    email_error     text
);
CREATE INDEX faxes_started ON faxes (started_at DESC);
