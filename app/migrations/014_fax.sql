-- Fax (app/fax/): every fax session, sent or received, with its result. A received fax's pages
-- live under <var_dir>/fax/in/<id>.tif and .pdf; a failed or partial one is kept all the same.

CREATE TABLE faxes (
    id              uuid PRIMARY KEY,
    interaction_id  uuid REFERENCES interactions (id),
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    -- in: the fax number called (DNIS); on_call: sent back on the caller's own call.
    mode            text NOT NULL CHECK (mode IN ('in', 'on_call')),
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
