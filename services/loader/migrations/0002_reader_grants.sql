-- The dashboard reads with the SELECT-only role `covid_reader` where the stack provides one
-- (scripts/stack.sh creates it). Without that role, nothing to do.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'covid_reader') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO covid_reader', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO covid_reader', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO covid_reader', current_schema());
    END IF;
END
$$;
