-- Voicemail: a message a caller left instead of waiting; the audio file lives under
-- <var_dir>/voicemail/<id>.wav. Each message becomes a callback task when we can dial out.

CREATE TABLE voicemails (
    id             uuid PRIMARY KEY,
    interaction_id uuid NOT NULL REFERENCES interactions (id),
    phone          text NOT NULL,
    queue          text,
    customer_id    bigint REFERENCES customers (id),
    recorded_at    timestamptz NOT NULL,
    duration_s     numeric,
    file_path      text NOT NULL,
    size_bytes     integer NOT NULL,
    status         text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'handled')),
    callback_id    uuid REFERENCES callbacks (id),
    emailed_at     timestamptz,
    email_error    text
);
CREATE INDEX voicemails_new ON voicemails (recorded_at) WHERE status = 'new';
