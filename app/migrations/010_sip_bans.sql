-- SIP sources banned for guessing passwords (app/security/), so bans survive a restart, and
-- every ban and its end as an event row.
CREATE TABLE sip_bans (
    address  text PRIMARY KEY,
    since    timestamptz NOT NULL,
    until    timestamptz NOT NULL,
    failures integer NOT NULL
);

CREATE TABLE sip_ban_events (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    kind    text NOT NULL,          -- banned, expired, lifted
    address text NOT NULL,
    data    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX sip_ban_events_address ON sip_ban_events (address, at);
