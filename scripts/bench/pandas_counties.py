#!/usr/bin/env python3
"""
pandas_counties.py -- the pandas + psycopg2 baseline of the issue 12 county benchmark
(scripts/bench-counties.sh): the keyed `counties` dataset done the way the earlier Python
solutions of the challenge would do it, on the files scripts/bench/generate_counties.py writes.

    pandas_counties.py DATABASE_URL V1_DIR V2_DIR [--schema bench_pandas] [--work DIR]
                       [--expected MANIFEST.json] [--drop]

DATABASE_URL may be the literal `env`: the URL is then read from $DATABASE_URL (keeps the password
off command lines). libpq's PG* variables (PGSSLMODE, PGSSLROOTCERT, ...) apply as usual.

Two runs, each in a process of its own (so each peak RSS is its own, as two daily runs would be):
  full load       read every us-counties-*.csv of V1_DIR (pd.read_csv), concat, drop the rows
                  duplicated across files (a disagreement fails), validate types, sort by
                  (state, county, date), per-key deltas with groupby().diff(); then in one
                  transaction: COPY into a staging table + INSERT ... ON CONFLICT DO UPDATE into
                  <schema>.counties_daily; the curated frame is saved (CSV) as the base of the next
                  run, as the peer solutions kept theirs in an S3 object.
  one-day update  the same for V2_DIR (everything read again), then diff against the saved base in
                  pandas (outer merge on key + date): new and changed rows upserted (COPY + upsert),
                  removed rows deleted, one line per revised cases/deaths value inserted into
                  <schema>.counties_daily_changes; all in one transaction; the base is saved again.

Output: JSON lines, one per step: {"impl": "pandas", "run": ..., "step": ..., "seconds": ...,
"peak_rss_mb": ...}; the totals are the steps `full_load` and `one_day_update`; the last line of each
run holds its counts. `--expected` checks the update's counts against generate_counties.py's
manifest (exit 1 on a mismatch). The schema is dropped and created at the start; `--drop` drops it
at the end.
"""

import argparse
import glob
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import pandas as pd
import psycopg2

KEY = ["state", "county"]
VALUES = ["fips", "cases", "deaths"]
ROW_COLS = ["date", "state", "county", "fips", "cases", "deaths", "new_cases", "new_deaths"]
COMPARED = ["fips", "cases", "deaths", "new_cases", "new_deaths"]
MAX_REMOVED_SHARE = 0.05
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DTYPES = {"date": str, "county": str, "state": str, "fips": str, "cases": "Int64",
          "deaths": "Int64"}


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Steps:
    def __init__(self, run):
        self.run, self.t0 = run, time.perf_counter()

    def __call__(self, name, fn, *args):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.emit(name, time.perf_counter() - t, cpu=time.process_time() - c)
        return out

    def emit(self, name, seconds, cpu=None, **extra):
        line = {"impl": "pandas", "run": self.run, "step": name, "seconds": round(seconds, 3),
                "cpu_seconds": None if cpu is None else round(cpu, 3),
                "peak_rss_mb": peak_rss_mb()}
        line.update(extra)
        print(json.dumps(line), flush=True)


# ---------------------------------------------------------------------------------------------
# extract + transform
# ---------------------------------------------------------------------------------------------
def read_files(directory):
    paths = sorted(glob.glob(os.path.join(directory, "us-counties*.csv")))
    if not paths:
        raise SystemExit(f"no us-counties*.csv in {directory}")
    frames = []
    for path in paths:
        # keep_default_na=False: a county named "NA" stays a name; only an empty count is NULL.
        df = pd.read_csv(path, dtype=DTYPES, keep_default_na=False,
                         na_values={"cases": [""], "deaths": [""]})
        missing = set(DTYPES) - set(df.columns)
        if missing:
            raise SystemExit(f"{path}: missing columns {sorted(missing)}")
        df = df[list(DTYPES)]
        df["file"] = os.path.basename(path)
        frames.append(df)
    return frames


def validate_file(df):
    name = df["file"].iat[0] if len(df) else "?"
    if not df["date"].str.match(ISO_DAY).all():
        raise SystemExit(f"{name}: a date is not YYYY-MM-DD")
    pd.to_datetime(df["date"], format="%Y-%m-%d")  # real calendar dates
    for col in KEY:
        if (df[col] == "").any():
            raise SystemExit(f"{name}: an empty {col}")
    for col in ("cases", "deaths"):
        if (df[col] < 0).any():
            raise SystemExit(f"{name}: a negative {col}")
    if df.duplicated(["date"] + KEY).any():
        raise SystemExit(f"{name}: a (date, state, county) twice")


def combine(frames):
    for df in frames:
        validate_file(df)
    df = pd.concat(frames, ignore_index=True)
    # rows present in two files (the recent file overlaps the current year's) are kept once ...
    df = df.drop_duplicates(subset=["date"] + KEY + VALUES)
    # ... and must agree
    clash = df[df.duplicated(["date"] + KEY, keep=False)]
    if len(clash):
        first = clash.sort_values(["date"] + KEY).head(2)
        a, b = first.iloc[0], first.iloc[1]
        raise SystemExit(f"{a['file']} and {b['file']} disagree on {a['date']} "
                         f"{a['county']}, {a['state']}")
    return df.drop(columns=["file"])


def deltas(df):
    df = df.sort_values(KEY + ["date"], ignore_index=True)
    first = ~df.duplicated(KEY)
    diff = df.groupby(KEY, sort=False)[["cases", "deaths"]].diff()
    for col in ("cases", "deaths"):
        new = diff[col].astype("Int64")
        new[first] = df.loc[first, col]
        df[f"new_{col}"] = new
    warnings = int((df["new_cases"] < 0).sum() + (df["new_deaths"] < 0).sum())
    return df, warnings


def transform(directory, steps):
    frames = steps("read_csv", read_files, directory)
    df = steps("concat_dedupe_validate", combine, frames)
    del frames
    df, warnings = steps("sort_deltas", deltas, df)
    return df, warnings


def save_curated(df, path):
    df.to_csv(path, index=False)


def read_curated(path):
    return pd.read_csv(path, dtype={"date": str, "state": str, "county": str, "fips": str,
                                    "cases": "Int64", "deaths": "Int64", "new_cases": "Int64",
                                    "new_deaths": "Int64"},
                       keep_default_na=False,
                       na_values={c: [""] for c in ("cases", "deaths", "new_cases", "new_deaths")})


# ---------------------------------------------------------------------------------------------
# load (psycopg2)
# ---------------------------------------------------------------------------------------------
def connect(url):
    conn = psycopg2.connect(url, application_name="bench_pandas_counties")
    conn.autocommit = False
    return conn


def setup_schema(conn, schema):
    with conn.cursor() as cur:
        cur.execute(f"""
            DROP SCHEMA IF EXISTS {schema} CASCADE;
            CREATE SCHEMA {schema};
            CREATE TABLE {schema}.counties_daily (
                date date NOT NULL, state text NOT NULL, county text NOT NULL, fips text NULL,
                cases bigint NULL, deaths bigint NULL, new_cases bigint NULL,
                new_deaths bigint NULL, updated_at timestamptz NOT NULL, run_id text NOT NULL,
                PRIMARY KEY (state, county, date));
            CREATE INDEX ON {schema}.counties_daily (date);
            CREATE INDEX ON {schema}.counties_daily (fips, date);
            CREATE TABLE {schema}.counties_daily_changes (
                run_id text NOT NULL, date date NOT NULL, state text NOT NULL,
                county text NOT NULL, field text NOT NULL, old_value bigint NULL,
                new_value bigint NULL);
            CREATE INDEX ON {schema}.counties_daily_changes (run_id);
        """)
    conn.commit()


def drop_schema(conn, schema):
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.commit()


def copy_frame(cur, df, table, columns):
    buf = io.StringIO()
    df[columns].to_csv(buf, index=False, header=True)  # NULL = empty unquoted field
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv, HEADER true)",
                    buf)


def upsert_rows(cur, schema, rows, run_id):
    cur.execute("""CREATE TEMP TABLE stage_rows (date date, state text, county text, fips text,
                   cases bigint, deaths bigint, new_cases bigint, new_deaths bigint)
                   ON COMMIT DROP""")
    copy_frame(cur, rows, "stage_rows", ROW_COLS)
    cur.execute(f"""
        INSERT INTO {schema}.counties_daily
               (date, state, county, fips, cases, deaths, new_cases, new_deaths, updated_at, run_id)
        SELECT date, state, county, fips, cases, deaths, new_cases, new_deaths, now(), %s
          FROM stage_rows
        ON CONFLICT (state, county, date) DO UPDATE
           SET fips = EXCLUDED.fips, cases = EXCLUDED.cases, deaths = EXCLUDED.deaths,
               new_cases = EXCLUDED.new_cases, new_deaths = EXCLUDED.new_deaths,
               updated_at = EXCLUDED.updated_at, run_id = EXCLUDED.run_id
         WHERE (counties_daily.fips, counties_daily.cases, counties_daily.deaths,
                counties_daily.new_cases, counties_daily.new_deaths)
               IS DISTINCT FROM (EXCLUDED.fips, EXCLUDED.cases, EXCLUDED.deaths,
                                 EXCLUDED.new_cases, EXCLUDED.new_deaths)""", (run_id,))
    return cur.rowcount


def full_load(conn, schema, df, run_id):
    with conn.cursor() as cur:
        n = upsert_rows(cur, schema, df, run_id)
    conn.commit()
    return n


def apply_delta(conn, schema, rows, removed, changes, run_id):
    with conn.cursor() as cur:
        written = upsert_rows(cur, schema, rows, run_id)
        cur.execute("""CREATE TEMP TABLE stage_removed (date date, state text, county text)
                       ON COMMIT DROP""")
        copy_frame(cur, removed, "stage_removed", ["date"] + KEY)
        cur.execute(f"""DELETE FROM {schema}.counties_daily t USING stage_removed r
                        WHERE t.state = r.state AND t.county = r.county AND t.date = r.date""")
        deleted = cur.rowcount
        cur.execute("""CREATE TEMP TABLE stage_changes (date date, state text, county text,
                       field text, old_value bigint, new_value bigint) ON COMMIT DROP""")
        copy_frame(cur, changes, "stage_changes",
                   ["date"] + KEY + ["field", "old_value", "new_value"])
        cur.execute(f"""INSERT INTO {schema}.counties_daily_changes
                        SELECT %s, date, state, county, field, old_value, new_value
                          FROM stage_changes""", (run_id,))
    conn.commit()
    return written, deleted


# ---------------------------------------------------------------------------------------------
# diff (pandas)
# ---------------------------------------------------------------------------------------------
def differs(a, b):
    """NULL-aware `a != b` (NULL vs NULL is equal)."""
    return ~((a == b).fillna(False).astype(bool) | (a.isna() & b.isna()))


def diff(cur, prev):
    on = ["date"] + KEY
    m = cur.merge(prev, on=on, how="outer", suffixes=("", "_old"), indicator=True)
    new = m["_merge"] == "left_only"
    gone = m["_merge"] == "right_only"
    both = m["_merge"] == "both"
    changed = pd.Series(False, index=m.index)
    for col in COMPARED:
        changed |= differs(m[col], m[f"{col}_old"])
    changed &= both
    rows = m.loc[new | changed, ROW_COLS]
    removed = m.loc[gone, on]
    lines = []
    for field in ("cases", "deaths"):
        hit = both & differs(m[field], m[f"{field}_old"])
        part = m.loc[hit, on + [f"{field}_old", field]]
        part.columns = on + ["old_value", "new_value"]
        part.insert(len(on), "field", field)
        lines.append(part)
    changes = pd.concat(lines, ignore_index=True).sort_values(on + ["field"])
    counts = {"inserted": int(new.sum()), "updated": int(changed.sum()),
              "removed": int(gone.sum()), "revised": int(changes[on].drop_duplicates().shape[0]),
              "unchanged": int((both & ~changed).sum())}
    return rows, removed, changes, counts


# ---------------------------------------------------------------------------------------------
# the two runs
# ---------------------------------------------------------------------------------------------
def run_full(url, v1, schema, work):
    steps = Steps("full")
    conn = connect(url)
    t = time.perf_counter()
    setup_schema(conn, schema)
    steps.emit("db_setup (not counted)", time.perf_counter() - t)
    t0, c0 = time.perf_counter(), time.process_time()
    df, warnings = transform(v1, steps)
    written = steps("db_copy_upsert", full_load, conn, schema, df, "v1")
    steps("save_curated_csv", save_curated, df, os.path.join(work, "curated.csv"))
    steps.emit("full_load", time.perf_counter() - t0, cpu=time.process_time() - c0,
               rows=len(df), written=written, negative_delta_warnings=warnings)
    conn.close()


def run_update(url, v2, schema, work, expected):
    steps = Steps("update")
    conn = connect(url)
    t0, c0 = time.perf_counter(), time.process_time()
    df, warnings = transform(v2, steps)
    prev = steps("read_previous_curated", read_curated, os.path.join(work, "curated.csv"))
    rows, removed, changes, counts = steps("diff_merge", diff, df, prev)
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {schema}.counties_daily")
        stored = cur.fetchone()[0]
    conn.rollback()
    if counts["removed"] > MAX_REMOVED_SHARE * stored:
        raise SystemExit(f"suspicious: {counts['removed']} of {stored} stored rows removed")
    written, deleted = steps("db_copy_upsert_delete_changes", apply_delta, conn, schema, rows,
                             removed, changes, "v2")
    steps("save_curated_csv", save_curated, df, os.path.join(work, "curated.csv"))
    counts.update(rows=len(df), written=written, deleted=deleted, change_lines=len(changes),
                  negative_delta_warnings=warnings)
    steps.emit("one_day_update", time.perf_counter() - t0, cpu=time.process_time() - c0,
               **counts)

    # Not timed: the table now equals the v2 dataset.
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*), count(*) FILTER (WHERE run_id = 'v2') "
                    f"FROM {schema}.counties_daily")
        total, touched = cur.fetchone()
        cur.execute(f"SELECT count(*) FROM {schema}.counties_daily_changes")
        change_rows = cur.fetchone()[0]
    conn.rollback()
    conn.close()
    problems = []
    if total != len(df):
        problems.append(f"table holds {total} rows, v2 has {len(df)}")
    if touched != counts["inserted"] + counts["updated"]:
        problems.append(f"{touched} rows carry run v2, expected inserted + updated")
    if change_rows != len(changes):
        problems.append(f"{change_rows} change rows stored, {len(changes)} computed")
    if expected:
        with open(expected, encoding="utf-8") as f:
            want = json.load(f)["v2_expected"]
        for k, v in want.items():
            if counts.get(k) != v:
                problems.append(f"{k}: {counts.get(k)} != manifest's {v}")
    print(json.dumps({"impl": "pandas", "run": "update", "step": "check",
                      "ok": not problems, "problems": problems}), flush=True)
    if problems:
        raise SystemExit(1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("database_url", help="a libpq URL, or `env` for $DATABASE_URL")
    ap.add_argument("v1_dir")
    ap.add_argument("v2_dir")
    ap.add_argument("--schema", default="bench_pandas")
    ap.add_argument("--work", help="where the curated base is kept (default: a temporary folder)")
    ap.add_argument("--expected", help="generate_counties.py's manifest.json to check counts")
    ap.add_argument("--drop", action="store_true", help="drop the schema at the end")
    ap.add_argument("--phase", choices=["full", "update"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.schema):
        raise SystemExit("--schema: lower-case letters, digits, _")
    url = os.environ.get("DATABASE_URL", "") if args.database_url == "env" else args.database_url
    if not url:
        raise SystemExit("no DATABASE_URL")

    if args.phase == "full":
        run_full(url, args.v1_dir, args.schema, args.work)
        return 0
    if args.phase == "update":
        run_update(url, args.v2_dir, args.schema, args.work, args.expected)
        return 0

    work = args.work or tempfile.mkdtemp(prefix="bench-pandas-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, DATABASE_URL=url)  # children read it from the environment
    base = [sys.executable, os.path.abspath(__file__), "env", args.v1_dir, args.v2_dir,
            "--schema", args.schema, "--work", work]
    if args.expected:
        base += ["--expected", args.expected]
    status = 0
    try:
        for phase in ("full", "update"):
            status = subprocess.run(base + ["--phase", phase], env=env).returncode
            if status:
                break
    finally:
        if args.drop:
            conn = connect(url)
            drop_schema(conn, args.schema)
            conn.close()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
