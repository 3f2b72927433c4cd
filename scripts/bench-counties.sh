#!/usr/bin/env bash
# Issue 12's county benchmark: the keyed `counties` dataset at the real final size (≈2.3 M rows,
# ≈110 MB of CSV split by year + a recent file), a full load and a one-day update, our release
# binaries side by side with the pandas + psycopg2 baseline (scripts/bench/pandas_counties.py).
#
#   scripts/bench-counties.sh
#
# Steps:
#   1. a virtualenv ($BENCH_VENV, default .stack/bench-venv) with pinned pandas, numpy and
#      psycopg2-binary, created or completed on first use (pip, from PyPI);
#   2. the synthetic history (scripts/bench/generate_counties.py) in $BENCH_COUNTIES_DIR (default
#      .stack/bench-counties): v1/ and v2/ (v1 + one day + 50 revisions); generated once and reused
#      while its manifest matches $BENCH_COUNTIES_ARGS (generator options, default none = 3250
#      counties, 780 dates, seed 1);
#   3. the pandas baseline against $DATABASE_URL in schema $BENCH_SCHEMA (default bench_pandas),
#      dropped again at the end. Without DATABASE_URL in the environment, the stack's operator
#      variables are used (.stack/env, or $STACK_ENV);
#   4. run_ours: the project's release examples, if built (this script never runs cargo; build
#      them with `cargo build --release --workspace --all-targets --locked`):
#      $CARGO_TARGET_DIR/release/examples/bench_counties --dir V1 --next V2
#      (crate loader: the transformer's read, deltas and delta, then the loader's reconcile and
#      delta apply, in one process), and
#      $CARGO_TARGET_DIR/release/examples/counties_pipeline_bench --dir V1 --next V2
#      (crate etl-tests: the real services against a fake GitHub serving V1 then V2, timed from
#      each run's first extracted event to its notification);
#   5. a side-by-side table. Every line a program prints that is a JSON object with "step" and
#      "seconds" (and optionally "peak_rss_mb") is a figure; the steps `full_load` and
#      `one_day_update` make the headline. The binary's whole-process wall time and peak RSS are
#      measured with /usr/bin/time as well.
# All figures of the run are also kept in $BENCH_COUNTIES_DIR/results.jsonl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.stack/bench-venv}"
DATA="${BENCH_COUNTIES_DIR:-$ROOT/.stack/bench-counties}"
GEN_ARGS="${BENCH_COUNTIES_ARGS:-}"
SCHEMA="${BENCH_SCHEMA:-bench_pandas}"
STACK_ENV="${STACK_ENV:-$ROOT/.stack/env}"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/covid-etl/target}"
PINS=(pandas==2.3.3 numpy==2.3.4 psycopg2-binary==2.9.11)

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

command -v /usr/bin/time >/dev/null || die "needs /usr/bin/time (GNU time)"

# ---- 1. the virtualenv ------------------------------------------------------------------------
PY="$VENV/bin/python"
venv_ok() {
  "$PY" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(any(version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))
PY
}
if ! venv_ok; then
  [ -x "$PY" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
  say "installing ${PINS[*]} into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
  venv_ok || die "$VENV does not have ${PINS[*]}"
fi

# ---- 2. the data ------------------------------------------------------------------------------
RESULTS="$DATA/results.jsonl"
wanted="$("$PY" - $GEN_ARGS <<'PY'
import argparse, json, sys
ap = argparse.ArgumentParser()
for a, d in (("--counties", 3250), ("--dates", 780), ("--seed", 1), ("--revisions", 50),
             ("--recent-days", 30)):
    ap.add_argument(a, type=int, default=d)
print(json.dumps(vars(ap.parse_args(sys.argv[1:])), sort_keys=True))
PY
)"
have="$("$PY" -c 'import json,sys; print(json.dumps({k.replace("-", "_"): v for k, v in json.load(open(sys.argv[1]))["args"].items()}, sort_keys=True))' "$DATA/manifest.json" 2>/dev/null || true)"
mkdir -p "$DATA"
if [ "$wanted" != "$have" ] || [ ! -d "$DATA/v1" ] || [ ! -d "$DATA/v2" ]; then
  say "generating the county history into $DATA ($wanted)"
  "$PY" "$ROOT/scripts/bench/generate_counties.py" "$DATA" $GEN_ARGS | tee "$DATA/generate.json" >&2
else
  say "reusing the county history in $DATA (delete it to regenerate)"
fi
: >"$RESULTS"

# ---- 3. the pandas baseline -------------------------------------------------------------------
if [ -z "${DATABASE_URL:-}" ]; then
  [ -f "$STACK_ENV" ] || die "no DATABASE_URL and no $STACK_ENV (start the stack: scripts/stack.sh up)"
  set -a
  # shellcheck disable=SC1090
  . "$STACK_ENV"
  set +a
fi
export DATABASE_URL
drop_schema() {
  "$PY" - "$SCHEMA" <<'PY' || say "could not drop schema $SCHEMA"
import os, sys, psycopg2
conn = psycopg2.connect(os.environ["DATABASE_URL"])
with conn, conn.cursor() as cur:
    cur.execute(f"DROP SCHEMA IF EXISTS {sys.argv[1]} CASCADE")
conn.close()
PY
}
"$PY" - <<'PY' || die "cannot connect to DATABASE_URL (TLS: sslmode / sslrootcert in the URL or PGSSLMODE / PGSSLROOTCERT)"
import os, sys, psycopg2
conn = psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=10)
with conn.cursor() as cur:
    cur.execute("SELECT current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())")
    user, ssl = cur.fetchone()
print(f"[bench] PostgreSQL as {user}, TLS {'on' if ssl else 'off'}", file=sys.stderr)
conn.close()
PY
cleanup() { drop_schema; rm -rf "$DATA/pandas-work"; }
trap cleanup EXIT

say "pandas baseline: full load of v1, then the one-day update to v2 (schema $SCHEMA)"
"$PY" "$ROOT/scripts/bench/pandas_counties.py" env "$DATA/v1" "$DATA/v2" --schema "$SCHEMA" \
  --work "$DATA/pandas-work" --expected "$DATA/manifest.json" | tee -a "$RESULTS"

# ---- 4. ours ----------------------------------------------------------------------------------
# Runs one release binary under /usr/bin/time; its JSON figure lines go to the results (tagged
# impl=ours, bin=NAME), the rest of its output is shown as it is.
run_bin() {
  local name="$1"
  shift
  local out tm
  out="$(mktemp)"
  tm="$(mktemp)"
  say "ours: $name $*"
  if ! /usr/bin/time -f '%e %U %S %M' -o "$tm" "$@" >"$out"; then
    cat "$out" >&2
    rm -f "$out" "$tm"
    die "$name failed"
  fi
  cat "$out" >&2
  "$PY" - "$name" "$out" "$tm" >>"$RESULTS" <<'PY'
import json, sys
name, out, tm = sys.argv[1:]
for line in open(out, encoding="utf-8", errors="replace"):
    try:
        obj = json.loads(line)
    except ValueError:
        continue
    if isinstance(obj, dict) and "step" in obj and "seconds" in obj:
        obj.update(impl="ours", bin=name)
        print(json.dumps(obj))
wall, user, system, rss_kb = open(tm).read().split()[-4:]
print(json.dumps({"impl": "ours", "bin": name, "step": f"{name} (whole process)",
                  "seconds": float(wall), "cpu_seconds": round(float(user) + float(system), 3),
                  "peak_rss_mb": round(int(rss_kb) / 1024, 1)}))
PY
  rm -f "$out" "$tm"
}

# >>> The lead plugs the project's own implementation in here. <<<
# Build first (not done here): cargo build --release --workspace --all-targets --locked
run_ours() {
  local name bin
  # bench_counties: the transformer's and the loader's work in one process, step by step;
  # counties_pipeline_bench: the running services, extracted event -> notification.
  for name in bench_counties counties_pipeline_bench; do
    bin="$CARGO_TARGET_DIR/release/examples/$name"
    if [ -x "$bin" ]; then
      run_bin "$name" "$bin" --dir "$DATA/v1" --next "$DATA/v2"
    else
      say "ours: $bin is not built (cargo build --release --workspace --all-targets --locked)"
    fi
  done
}
run_ours

# ---- 5. the table -----------------------------------------------------------------------------
"$PY" - "$RESULTS" "$DATA/manifest.json" "$DATA/generate.json" <<'PY'
import json, os, sys
results, manifest, generated = sys.argv[1:]
rows = [json.loads(l) for l in open(results) if l.strip()]
m = json.load(open(manifest))
gen = json.load(open(generated)) if os.path.exists(generated) else {}
d = os.path.dirname(manifest)
mb = lambda v: sum(os.path.getsize(os.path.join(d, v, f)) for f in os.listdir(os.path.join(d, v))) / 1e6
print()
print(f"data: {m['v1_rows']:,} rows in v1 ({m['first_date']} .. {m['v1_last_date']}, "
      f"{m['args']['counties']} counties), {mb('v1'):.1f} MB v1 + {mb('v2'):.1f} MB v2; "
      f"v2 = +{m['v2_expected']['inserted']} rows on {m['v2_new_date']}, "
      f"{m['v2_expected']['revised']} revisions"
      + (f"; generated in {gen['seconds']:.1f} s" if gen else ""))

def pick(impl, step):
    hits = [r for r in rows if r.get("impl") == impl and r.get("step") == step]
    if not hits:
        return None, None
    secs = sum(r["seconds"] for r in hits)
    rss = [r["peak_rss_mb"] for r in hits if r.get("peak_rss_mb") is not None]
    return secs, (max(rss) if rss else None)

fmt = lambda v, f: "-" if v is None else format(v, f)
print()
print(f"{'':<16}{'pandas s':>10}{'pandas MB':>11}{'ours s':>10}{'ours MB':>10}{'speed-up':>10}")
# The services' figures (extracted event -> notification) beside the baseline's whole job.
for step, ours, label in (("full_load", "full_load", "full load"),
                          ("one_day_update", "one_day_update", "one-day update"),
                          ("full_load", "pipeline_full_load", "  services"),
                          ("one_day_update", "pipeline_one_day_update", "  services")):
    ps, pm = pick("pandas", step)
    os_, om = pick("ours", ours)
    up = f"{ps / os_:.1f}x" if ps and os_ else "-"
    print(f"{label:<16}{fmt(ps, '.2f'):>10}{fmt(pm, '.0f'):>11}{fmt(os_, '.2f'):>10}"
          f"{fmt(om, '.0f'):>10}{up:>10}")
print()
print("all steps (wall seconds, CPU seconds of the client process, peak RSS MB so far in it):")
for r in rows:
    if "seconds" not in r:
        continue
    who = r["impl"] + (f"/{r['bin']}" if "bin" in r else f"/{r.get('run', '')}")
    print(f"  {who:<28}{r['step']:<40}{r['seconds']:>9.3f}{fmt(r.get('cpu_seconds'), '.3f'):>9}"
          f"{fmt(r.get('peak_rss_mb'), '.0f'):>8}")
print(f"load average at the end: {open('/proc/loadavg').read().split()[0]} "
      f"on {os.cpu_count()} CPUs (wall times on a shared machine: compare CPU seconds too)")
checks = [r for r in rows if r.get("step") == "check"]
for c in checks:
    print(f"pandas result check: {'ok' if c['ok'] else 'FAILED: ' + '; '.join(c['problems'])}")
PY
