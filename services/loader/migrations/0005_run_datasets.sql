-- Runs of every dataset share `etl_runs` (issue 12). A run belongs to one dataset; runs recorded
-- before datasets existed, and failures reported without one, are `us`'s.
ALTER TABLE etl_runs ADD COLUMN dataset text NOT NULL DEFAULT 'us';

-- Run order is per dataset: a counties run never supersedes a us run. The loader asks, under its
-- lock, for the newest succeeded run of one dataset (this replaces 0003's index, which served
-- the same question across every run of the env).
DROP INDEX IF EXISTS etl_runs_succeeded_order;
CREATE INDEX etl_runs_succeeded_order ON etl_runs (dataset, upstream_time DESC, sequence DESC)
    WHERE status = 'succeeded';
