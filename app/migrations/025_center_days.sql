-- The reports' day summaries (018) are now days of the center (its time zone), written by the
-- nightly job (app/supervision/summaries.py), no longer UTC days written by the first report.
-- What was kept under the old meaning is dropped: the job sums those days up again at its next
-- start, and until then reports read them from the events, to the same figures. Each kept day
-- notes the zone it was cut in: when the center's time zone changes, the job drops them all
-- and sums the days up again in the new one.
DELETE FROM report_agent_time;
DELETE FROM report_calls;
DELETE FROM report_days_kept;
ALTER TABLE report_days_kept ADD COLUMN zone text NOT NULL;
COMMENT ON COLUMN report_days_kept.day IS 'a day of the center, in the time zone of column zone';
