-- The keyed datasets of issue 12 (notes: keyed contract): the NYT series per state and per county,
-- beside the national `us_daily`. Each keeps the latest successful run's rows, one line per
-- revised upstream value, and in `keyed_base` which run the table holds (the base a delta is
-- computed against).

-- One state's day. The primary key serves one state's series; `(date)` serves one date across
-- states (`/latest`, a map).
CREATE TABLE states_daily (
    date       date NOT NULL,
    state      text NOT NULL,
    fips       text NULL,
    cases      bigint NULL,
    deaths     bigint NULL,
    new_cases  bigint NULL,
    new_deaths bigint NULL,
    -- When the row last changed, and the run that changed it.
    updated_at timestamptz NOT NULL DEFAULT now(),
    run_id     text NOT NULL,
    PRIMARY KEY (state, date)
);
CREATE INDEX states_daily_date ON states_daily (date);

-- One county's day. The primary key serves one county's series; `(date)` one date across
-- counties; `(fips, date)` a county by its FIPS code (empty for New York City and `Unknown`).
CREATE TABLE counties_daily (
    date       date NOT NULL,
    state      text NOT NULL,
    county     text NOT NULL,
    fips       text NULL,
    cases      bigint NULL,
    deaths     bigint NULL,
    new_cases  bigint NULL,
    new_deaths bigint NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    run_id     text NOT NULL,
    PRIMARY KEY (state, county, date)
);
CREATE INDEX counties_daily_date ON counties_daily (date);
CREATE INDEX counties_daily_fips ON counties_daily (fips, date);

-- One line per revised upstream value. The primary key leads with run_id: a run's revisions are
-- read through it.
CREATE TABLE states_daily_changes (
    run_id    text NOT NULL,
    date      date NOT NULL,
    state     text NOT NULL,
    field     text NOT NULL CHECK (field IN ('cases', 'deaths')),
    old_value bigint NULL,
    new_value bigint NULL,
    PRIMARY KEY (run_id, state, date, field)
);

CREATE TABLE counties_daily_changes (
    run_id    text NOT NULL,
    date      date NOT NULL,
    state     text NOT NULL,
    county    text NOT NULL,
    field     text NOT NULL CHECK (field IN ('cases', 'deaths')),
    old_value bigint NULL,
    new_value bigint NULL,
    PRIMARY KEY (run_id, state, county, date, field)
);

-- Which run each keyed table holds, and how many rows: a delta applies only on top of its base.
CREATE TABLE keyed_base (
    dataset    text PRIMARY KEY,
    run_id     text NOT NULL,
    rows       bigint NOT NULL,
    applied_at timestamptz NOT NULL
);

-- The reader role reads the new tables too (as in 0002; its default privileges cover tables the
-- migrating role creates, this covers a schema migrated by another role).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'covid_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO covid_reader', current_schema());
        EXECUTE 'GRANT SELECT ON states_daily, counties_daily, states_daily_changes,
                 counties_daily_changes, keyed_base TO covid_reader';
    END IF;
END
$$;
