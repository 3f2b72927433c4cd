-- The tables of one env's schema (DESIGN.md, "PostgreSQL"). The runner sets search_path to the
-- env's schema, so names are unqualified here.

-- The latest successful run's rows: inserted, updated only when a value changed, removed when the
-- date left the dataset.
CREATE TABLE us_daily (
    date          date PRIMARY KEY,
    cases         bigint NOT NULL,
    deaths        bigint NOT NULL,
    recovered     bigint NULL,
    new_cases     bigint,
    new_deaths    bigint,
    new_recovered bigint,
    -- When the row last changed, and the run that changed it.
    updated_at    timestamptz NOT NULL DEFAULT now(),
    run_id        text NOT NULL
);

-- One row per changed upstream value: the history of upstream corrections.
CREATE TABLE us_daily_changes (
    run_id    text NOT NULL,
    date      date NOT NULL,
    field     text NOT NULL CHECK (field IN ('cases', 'deaths', 'recovered')),
    old_value bigint,
    new_value bigint,
    PRIMARY KEY (run_id, date, field)
);
CREATE INDEX us_daily_changes_date ON us_daily_changes (date);

-- One row per run, succeeded or failed. A failure reported without a run id (an extraction) is
-- keyed by the failure's own id.
CREATE TABLE etl_runs (
    run_id            text PRIMARY KEY,
    status            text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    -- Where a failed run stopped; 'load' for a succeeded run, which went all the way.
    stage             text NOT NULL CHECK (stage IN ('extract', 'transform', 'load', 'notify')),
    -- The failure's machine word (invalid_data, suspicious_removal, unavailable, ...).
    kind              text,
    error             text,
    trigger           jsonb,
    -- The run's inputs: per source, the upstream commit and the raw object's content hash.
    inputs            jsonb NOT NULL DEFAULT '[]',
    inserted          bigint,
    updated           bigint,
    unchanged         bigint,
    removed           bigint,
    revised           bigint,
    corrections_total bigint,
    rows              bigint,
    first_date        date,
    last_date         date,
    dropped           jsonb,
    warnings          jsonb,
    -- Milliseconds per step, in order: [["transform.read", 3], ..., ["load.apply", 2]].
    timings           jsonb,
    -- From started_at (the extraction that triggered the run) to the commit of the load.
    duration_ms       bigint,
    started_at        timestamptz NOT NULL,
    -- When the transformer took the run up: succeeded runs are applied in this order.
    transformed_at    timestamptz,
    finished_at       timestamptz NOT NULL
);
CREATE INDEX etl_runs_finished_at ON etl_runs (finished_at DESC);
