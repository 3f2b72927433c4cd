#!/usr/bin/env bash
# Benchmarks the transform (release build) side by side with the pandas baseline
# (../shared/reference/pandas_baseline.py) on the same two files.
#
#   scripts/bench-transform.sh [NYT_CSV] [JHU_CSV] [REPEAT]
#
# Defaults: the real-size snapshots in ../shared/upstream and 50 runs. The pandas baseline runs in
# its own virtualenv ($BENCH_VENV, default .stack/bench-venv), created on first use. A release build
# of polars takes a long time the first time (≈13 min on 2 cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$(cd "$ROOT/.." && pwd)/shared"
NYT="${1:-$SHARED/upstream/nyt/us.csv}"
JHU="${2:-$SHARED/upstream/jhu/time-series-19-covid-combined.csv}"
REPEAT="${3:-50}"
BASELINE="${PANDAS_BASELINE:-$SHARED/reference/pandas_baseline.py}"
VENV="${BENCH_VENV:-$ROOT/.stack/bench-venv}"
PANDAS_VERSION="${PANDAS_VERSION:-2.3.3}"

say() { printf '[bench] %s\n' "$*"; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

[ -f "$NYT" ] || die "no NYT file at $NYT"
[ -f "$JHU" ] || die "no JHU file at $JHU"
[ -f "$BASELINE" ] || die "no pandas baseline at $BASELINE (set PANDAS_BASELINE)"

say "building the benchmark (release)"
(cd "$ROOT" && cargo build --release --quiet -p dataset --example bench_transform)

say "polars (this project): $REPEAT runs"
(cd "$ROOT" && cargo run --release --quiet -p dataset --example bench_transform -- "$NYT" "$JHU" "$REPEAT")

if ! "$VENV/bin/python" -c 'import pandas' 2>/dev/null; then
  say "creating $VENV with pandas $PANDAS_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "pandas==$PANDAS_VERSION"
fi

say "pandas baseline ($("$VENV/bin/python" -c 'import pandas; print(pandas.__version__)')): $REPEAT runs"
# The baseline prints its own step timings (minimum over the runs); GNU time adds its peak RSS.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
/usr/bin/time -f '%M' -o "$log" "$VENV/bin/python" "$BASELINE" "$NYT" "$JHU" --repeat "$REPEAT"
awk '{ printf "peak RSS (max resident): %.1f MB\n", $1 / 1024 }' "$log"
