-- Runs are ordered by facts every host agrees on, never by a host's clock: the newest upstream
-- commit time among a run's inputs, then the JetStream sequence of the extracted event that
-- started it (the transformed event's `order`). A run that arrives after a newer one already
-- succeeded is recorded as `superseded` (and by which run) instead of being applied.

ALTER TABLE etl_runs
    ADD COLUMN upstream_time timestamptz,
    ADD COLUMN sequence bigint,
    ADD COLUMN superseded_by text;

-- The inline CHECK of 0001 got PostgreSQL's default name.
ALTER TABLE etl_runs DROP CONSTRAINT IF EXISTS etl_runs_status_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_status_check
    CHECK (status IN ('succeeded', 'failed', 'superseded'));
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_superseded_by_check
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL));

-- Runs recorded before this migration: their upstream time is in their inputs; the sequence is
-- unknown and stays NULL, so such a run is newer than a new run only when its commits are
-- strictly newer (a NULL never compares greater).
UPDATE etl_runs r
SET upstream_time = (
    SELECT max((input -> 'upstream' ->> 'commit_time')::timestamptz)
    FROM jsonb_array_elements(r.inputs) AS input
)
WHERE jsonb_typeof(r.inputs) = 'array';

-- The loader asks, under its lock, for the newest succeeded run.
CREATE INDEX etl_runs_succeeded_order ON etl_runs (upstream_time DESC, sequence DESC)
    WHERE status = 'succeeded';
