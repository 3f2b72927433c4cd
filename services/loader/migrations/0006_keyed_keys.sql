-- Each keyed dataset's keys in a small table of their own (issue 12's speed): one line per state
-- or county the table holds, with the FIPS code of its latest row and its first and last dates.
-- The loader rebuilds it from the primary key at the end of every load, in the load's
-- transaction, so it always lists exactly the keys the table holds.
--
-- It replaces the secondary indexes of 0004. A question across keys (every county on one date,
-- a week's average per county) walks this list and reads each key's rows through the primary key
-- (a few thousand index probes, a few milliseconds); a county named by its FIPS code is found
-- here; the latest date is `max(last_date)`. The indexes cost more than the data: building
-- `(date)` and `(fips, date)` over 2.3 M county rows took twice as long as COPYing the rows, and
-- every load kept them up to date.
DROP INDEX IF EXISTS states_daily_date;
DROP INDEX IF EXISTS counties_daily_date;
DROP INDEX IF EXISTS counties_daily_fips;

CREATE TABLE states_keys (
    state      text PRIMARY KEY,
    fips       text NULL,
    first_date date NOT NULL,
    last_date  date NOT NULL
);

CREATE TABLE counties_keys (
    state      text NOT NULL,
    county     text NOT NULL,
    fips       text NULL,
    first_date date NOT NULL,
    last_date  date NOT NULL,
    PRIMARY KEY (state, county)
);
CREATE INDEX counties_keys_fips ON counties_keys (fips);

-- The keys of what is stored already (the loader keeps them from now on).
INSERT INTO states_keys (state, fips, first_date, last_date)
SELECT state, (array_agg(fips ORDER BY date DESC))[1], min(date), max(date)
FROM states_daily GROUP BY state;
INSERT INTO counties_keys (state, county, fips, first_date, last_date)
SELECT state, county, (array_agg(fips ORDER BY date DESC))[1], min(date), max(date)
FROM counties_daily GROUP BY state, county;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'covid_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO covid_reader', current_schema());
        EXECUTE 'GRANT SELECT ON states_keys, counties_keys TO covid_reader';
    END IF;
END
$$;
