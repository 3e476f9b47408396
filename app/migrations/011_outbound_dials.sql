-- Every number the center dialled through a trunk (app/domain/outbound.py admitted it), so the
-- per-number and per-trunk hourly and daily limits hold across a restart.
CREATE TABLE outbound_dials (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    number  text NOT NULL,
    trunk   text NOT NULL,
    purpose text NOT NULL
);
CREATE INDEX outbound_dials_at ON outbound_dials (at);
